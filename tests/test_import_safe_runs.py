"""Issue 8, the import side at library level: when the API as a whole is unreachable (and when
it is only one row), rows that left the source while in flight are looked up and never sent
blind, a stop drops what waits for the rate window and leaves nothing in flight, the dry run's
rate and exit code, and one run per checkpoint (import and migrate)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from helpers import KEY, WORKSPACE
from safe_runs_support import ProxyRules, Served, proxy_app, serve, write_customers, write_text

from bulk.api.estimate import Pace
from bulk.errors import RESUME_HINT, CheckpointBusyError
from bulk.importing.importer import ImportOutcome, run_import
from bulk.importing.reports import PlanSummary, per_minute
from bulk.lock import CheckpointLock
from bulk.migrate import run_migrate
from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox
from bulk.settings import ConnectionSettings, ImportSettings, MigrateSettings


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backoff draws 0 (a legal full-jitter draw): 8 attempts take milliseconds."""
    monkeypatch.setattr(random.Random, "uniform", lambda self, a, b: min(a, b))


def settings_for(base_url: str, source: Path, tmp_path: Path, **options: object) -> ImportSettings:
    return ImportSettings(
        connection=ConnectionSettings(api_key=KEY, base_url=base_url, concurrency=4),
        files={"customers": source},
        checkpoint=tmp_path / "ck.sqlite",
        quiet=True,
        **options,  # type: ignore[arg-type]
    )


def keys_in(sandbox: Sandbox) -> list[str]:
    return sorted(c["metadata"]["external_id"] for c in sandbox.objects(WORKSPACE, "customer"))


def states(checkpoint: Path) -> dict[str, str]:
    with sqlite3.connect(checkpoint) as db:
        return dict(db.execute("SELECT key, state FROM rows WHERE pass = 'customers'").fetchall())


# -- 10. unreachable is the whole API, not one row ---------------------------------------------


def dies_after_me(served: Served) -> web.Application:
    """Answers the first `GET /me`, then drops every connection: the API went away."""

    async def handle(request: web.Request) -> web.StreamResponse:
        served.requests.append((request.method, request.path))
        if request.path.endswith("/me") and len(served.requests) == 1:
            return web.json_response({"object": "me", "organization": {"id": "org_1"}})
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def test_an_api_that_stops_answering_ends_the_run_with_exit_3_and_a_resume_completes(
    no_backoff: None, sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_customers(tmp_path / "customers.csv", 6)
    with serve(dies_after_me) as dead:
        outcome = await run_import(settings_for(dead.base_url, source, tmp_path))
        probes = [path for method, path in dead.requests[1:] if path.endswith("/me")]

    assert outcome.exit_code == 3
    assert outcome.error is not None and "unreachable" in outcome.error
    assert outcome.error.endswith(RESUME_HINT)  # unlike a refused key, this one resumes
    assert outcome.to_json()["error"] == outcome.error
    # one probe GET /me through its 8 attempts (aiohttp itself resends a GET once when a
    # kept-alive connection drops, so the server may see each attempt twice)
    assert 8 <= len(probes) <= 16
    assert set(states(tmp_path / "ck.sqlite").values()) <= {"failed", "in_flight", "pending"}

    resumed = await run_import(settings_for(sandbox.base_url, source, tmp_path))

    assert resumed.exit_code == 0, resumed.error
    assert keys_in(sandbox) == sorted(f"K{n}" for n in range(1, 7))


async def test_rows_failing_while_get_me_answers_fail_alone_with_exit_1(
    no_backoff: None, threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_customers(tmp_path / "customers.csv", 6)
    with serve(proxy_app(threaded_sandbox, ProxyRules(drop=b'"name"'))) as proxy:
        outcome = await run_import(settings_for(proxy.base_url, source, tmp_path))

    assert outcome.exit_code == 1, outcome.error
    assert outcome.error is None
    assert outcome.summary.passes["customers"].failed == 6
    assert set(states(tmp_path / "ck.sqlite").values()) == {"failed"}


# -- 11. rows that left the source while in flight ---------------------------------------------


@pytest.mark.parametrize("made_elsewhere", [False, True], ids=["not in Pivotal", "in Pivotal"])
async def test_a_row_that_left_the_source_while_in_flight_is_looked_up_never_sent(
    made_elsewhere: bool, no_backoff: None, threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_customers(tmp_path / "customers.csv", 6)
    with serve(proxy_app(threaded_sandbox, ProxyRules(drop=b'"Customer K3"'))) as proxy:
        first = await run_import(settings_for(proxy.base_url, source, tmp_path))
    assert first.exit_code == 1
    assert states(tmp_path / "ck.sqlite")["K3"] == "failed"  # outcome unknown: request kept
    if made_elsewhere:
        other = write_text(tmp_path / "k3.csv", "external_id,name,plan\nK3,Customer K3,gold\n")
        made = await run_import(settings_for(threaded_sandbox.base_url, other, tmp_path / "other"))
        assert made.exit_code == 0
    write_text(
        source,
        "external_id,name,plan\n" + "".join(f"K{n},Customer K{n},gold\n" for n in (1, 2, 4, 5, 6)),
    )
    posts = threaded_sandbox.stats.methods["POST"]

    again = await run_import(settings_for(threaded_sandbox.base_url, source, tmp_path))

    assert again.exit_code == 0, again.error
    assert threaded_sandbox.stats.methods["POST"] == posts  # K3 was not sent blind
    expected = ["K1", "K2", "K4", "K5", "K6"] + (["K3"] if made_elsewhere else [])
    assert keys_in(threaded_sandbox) == sorted(expected)
    customers = again.summary.passes["customers"]
    assert (customers.total, customers.unchanged, customers.not_in_source) == (5, 5, 1)
    assert "not in source: 1, left as they are in Pivotal" in again.render()
    [note] = [w for w in again.warnings if "'K3'" in w]
    if made_elsewhere:
        assert "recorded as adopted" in note
        assert states(tmp_path / "ck.sqlite")["K3"] == "done"
    else:
        assert "not in Pivotal and was not sent again" in note


# -- 4. a stop drops requests waiting for the window and leaves nothing in flight --------------


async def test_a_stop_during_a_rate_limit_wait_leaves_the_waiting_rows_pending(
    tmp_path: Path,
) -> None:
    source = write_customers(tmp_path / "customers.csv", 20)
    config = SandboxConfig(rate_limit=5, test_rate_limit=0, window_s=30)
    async with running_sandbox(config) as narrow:

        async def interrupt_when_held() -> None:
            while narrow.stats.requests < 5:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)

        interrupter = asyncio.create_task(interrupt_when_held())
        started = time.monotonic()
        outcome: ImportOutcome = await run_import(settings_for(narrow.base_url, source, tmp_path))
        await interrupter

    assert outcome.exit_code == 130
    assert time.monotonic() - started < 5
    assert outcome.error is not None and outcome.error.startswith("Interrupted.")
    found = states(tmp_path / "ck.sqlite")
    assert sorted(found.values()).count("done") == narrow.stats.methods["POST"] == 4
    assert "in_flight" not in found.values()  # nothing left: the waiting rows never left


# -- 6. the dry run's rate and exit code -------------------------------------------------------


def test_the_per_minute_rate_comes_from_the_keys_limit_and_window() -> None:
    def pace(limit: int | None, window_s: float) -> Pace:
        return Pace(limit=limit, window_s=window_s, latency_s=0.01, concurrency=4)

    assert per_minute(pace(600, 60.25)) == 600
    assert per_minute(pace(600, 61.2)) == 600
    assert per_minute(pace(5, 30.9)) == 10
    assert per_minute(pace(None, 60.25)) is None
    unlimited = PlanSummary.from_counts({"customers": {"create": 10}}, pace(None, 60.25))
    assert "(the server sets no rate limit)" in unlimited.render()
    capped = PlanSummary.from_counts({"customers": {"create": 10}}, pace(600, 60.25), 60)
    assert capped.rate_per_min == 60 and capped.eta_s >= 10


async def test_a_dry_run_with_strict_exits_as_the_real_run_would(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_text(tmp_path / "customers.csv", "external_id,name,status\nK1,A,bogus!\n")

    outcome = await run_import(
        settings_for(sandbox.base_url, source, tmp_path, dry_run=True, strict=True)
    )

    assert outcome.exit_code == 2
    assert sandbox.stats.requests == 1  # the GET /me
    assert json.dumps(outcome.to_json())


# -- 3. one run per checkpoint -------------------------------------------------------------


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """A checkpoint another run holds (flock conflicts within one process too)."""
    with CheckpointLock(tmp_path / "ck.sqlite", "bulk import"):
        yield tmp_path / "ck.sqlite"


async def test_an_import_on_a_held_checkpoint_is_refused_before_any_request(
    held: Path, sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_customers(tmp_path / "customers.csv", 3)

    with pytest.raises(CheckpointBusyError, match=f"pid {os.getpid()}"):
        await run_import(settings_for(sandbox.base_url, source, tmp_path))

    assert sandbox.stats.requests == 0


async def test_a_second_migrate_on_the_same_workdir_is_refused_at_once(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    unreachable = "http://127.0.0.1:9/api/v1"  # any request would take seconds to fail
    settings = MigrateSettings(
        source=ConnectionSettings(api_key="pivotal_a", base_url=unreachable),
        target=ConnectionSettings(api_key="pivotal_b", base_url=unreachable),
        workdir=workdir,
    )
    started = time.monotonic()

    with (
        CheckpointLock(workdir / "migrate", "bulk migrate"),
        pytest.raises(CheckpointBusyError, match=str(workdir)),
    ):
        await run_migrate(settings)

    assert time.monotonic() - started < 1
