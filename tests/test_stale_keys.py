"""Stale keys: the API keeps idempotency keys 24 hours, and a resume may come days later or
after the checkpoint was lost. Customers and contacts collide on their slug and email and are
adopted; an onboarding has nothing unique, so it is looked up under its customer before it is
sent again, and adopted when it is found — never created twice, never guessed.

The sandbox forgets keys as `pivotal-api.md` says, 24 hours after it stored them, on its own
clock: these tests run it on the wall clock and let a day pass when they need keys forgotten.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import polars as pl
import pytest
import pytest_asyncio
from helpers import (
    KEY,
    WORKSPACE,
    api,
    assert_workspace_matches_samples,
    counts,
    create,
    import_settings,
    kill_when,
    source_rows,
)
from test_import_crash import posts_reach, start_import

from bulk.checkpoint import Checkpoint
from bulk.importing.importer import run_import
from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox, sandbox_in_thread

KEYS_KEPT_S = 24 * 60 * 60
"""How long the API keeps an idempotency key (pivotal-api.md, Idempotency)."""


class DayLaterClock:
    """The wall clock, until the test lets a day pass: then every stored key is too old."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s

    def let_a_day_pass(self, sandbox: Sandbox | None = None) -> None:
        """Once `sandbox` answered every request it admitted: a killed client's last requests
        still run there, and their keys must be stored before the day, not after it."""
        if sandbox is not None:
            deadline = time.monotonic() + 30
            while sum(sandbox.stats.statuses.values()) < sandbox.stats.requests:
                assert time.monotonic() < deadline, "the sandbox never answered"
                time.sleep(0.001)
        self.offset_s += KEYS_KEPT_S + 60


def forgetful_config(clock: DayLaterClock, latency_ms: float = 0.0) -> SandboxConfig:
    return SandboxConfig(rate_limit=0, test_rate_limit=0, latency_ms=latency_ms, clock=clock)


@pytest.fixture
def day_clock() -> DayLaterClock:
    return DayLaterClock()


@pytest_asyncio.fixture
async def forgetful(day_clock: DayLaterClock) -> AsyncIterator[Sandbox]:
    async with running_sandbox(forgetful_config(day_clock)) as running:
        yield running


def states(checkpoint: Path, pass_name: str) -> dict[str, int]:
    """The checkpoint's rows of a pass by state, read as `bulk status` reads them."""
    opened = Checkpoint(checkpoint, read_only=True)
    try:
        return opened.state_counts().get(pass_name, {})
    finally:
        opened.close()


def patch(sandbox: Sandbox, path: str, body: dict[str, object]) -> None:
    """Someone edits a record in Pivotal (a synchronous PATCH, from a thread-run sandbox's test)."""
    request = urllib.request.Request(
        sandbox.base_url + path,
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 200


def summary_counts(stdout: str) -> dict[str, dict[str, int]]:
    """The printed summary's table: per pass, its counts by column."""
    header, *lines = stdout.splitlines()
    columns = header.split()[1:]
    return {
        line.split()[0]: dict(zip(columns, map(int, line.split()[1:]), strict=True))
        for line in lines[:3]
    }


def sample_count(name: str) -> int:
    return len(source_rows(name))


# -- (a) a resume after the key window ----------------------------------------------------------


def test_onboardings_in_flight_resumed_after_the_key_window_are_not_created_twice(
    tmp_path: Path,
) -> None:
    clock = DayLaterClock()
    with sandbox_in_thread(forgetful_config(clock, latency_ms=15)) as sandbox:
        checkpoint = tmp_path / "import.sqlite"
        parents = sample_count("customers") + sample_count("contacts")
        process = start_import(sandbox, checkpoint)
        # killed while the onboardings pass has requests out whose answers it never reads
        assert kill_when(process, posts_reach(sandbox, parents + 3))
        clock.let_a_day_pass(sandbox)  # once it answered them: then it forgets every key
        at_kill = states(checkpoint, "onboardings")
        assert at_kill.get("in_flight", 0) >= 1
        landed = len(sandbox.objects(WORKSPACE, "onboarding"))
        assert landed > at_kill.get("done", 0)  # created, and the client never heard of it
        gets_before = sandbox.stats.methods["GET"]

        resumed = start_import(sandbox, checkpoint)
        stdout, stderr = resumed.communicate(timeout=120)

        assert resumed.returncode == 0, stderr.decode()
        assert_workspace_matches_samples(sandbox)  # each exactly once, field by field
        assert sandbox.stats.replays == 0  # nothing came back from a key: it was looked up
        # each found under its customer, as its own POST made it: created, as a replay says
        assert summary_counts(stdout.decode())["onboardings"]["created"] == sample_count(
            "onboardings"
        )
        # the cost: GET /me, and one list per onboarding that was in flight (each under its
        # own customer); those that were not are sent without a look-up
        assert sandbox.stats.methods["GET"] - gets_before == 1 + at_kill["in_flight"]


def test_an_onboarding_in_flight_edited_since_is_found_by_its_name_and_patched_back(
    tmp_path: Path,
) -> None:
    clock = DayLaterClock()
    with sandbox_in_thread(forgetful_config(clock, latency_ms=15)) as sandbox:
        checkpoint = tmp_path / "import.sqlite"
        parents = sample_count("customers") + sample_count("contacts")
        assert kill_when(start_import(sandbox, checkpoint), posts_reach(sandbox, parents + 3))
        clock.let_a_day_pass(sandbox)
        sent = in_flight_customers(checkpoint)
        edited = [o for o in sandbox.objects(WORKSPACE, "onboarding") if o["customer_id"] in sent]
        assert edited  # landed, unheard of
        for onboarding in edited:  # somebody moves them on before the resume
            phase = "launch" if onboarding["phase"] == "completed" else "completed"
            patch(sandbox, f"/onboardings/{onboarding['id']}", {"phase": phase})

        resumed = start_import(sandbox, checkpoint)
        stdout, stderr = resumed.communicate(timeout=120)

        assert resumed.returncode == 0, stderr.decode()
        assert_workspace_matches_samples(sandbox)  # no twin, and the source's phase again
        onboardings = summary_counts(stdout.decode())["onboardings"]
        assert onboardings["adopted"] == len(edited)  # not what was sent any more: by name
        assert onboardings["created"] == sample_count("onboardings") - len(edited)
        kept = {o["id"] for o in sandbox.objects(WORKSPACE, "onboarding")}
        assert {o["id"] for o in edited} <= kept


def in_flight_customers(checkpoint: Path) -> set[str]:
    """The customers that the onboarding POSTs in flight were sent for."""
    opened = Checkpoint(checkpoint, read_only=True)
    try:
        run = opened.latest_run()
        assert run is not None
        rows = opened.rows_to_send("onboardings", run)
        return {
            json.loads(row.request_body)["customer_id"]
            for row in rows
            if row.request_body is not None
        }
    finally:
        opened.close()


# -- (b) a lost checkpoint a day later ----------------------------------------------------------


async def test_a_lost_checkpoint_a_day_later_adopts_every_record_and_creates_none(
    forgetful: Sandbox, day_clock: DayLaterClock, tmp_path: Path
) -> None:
    first = await run_import(import_settings(forgetful, tmp_path))
    assert first.exit_code == 0, first.error
    assert forgetful.stats.methods["GET"] == 1  # GET /me: its own customers need no look-up
    day_clock.let_a_day_pass()
    for output in tmp_path.glob("import.*"):
        output.unlink()  # checkpoint, results and errors files: moved away, as advised
    posts_before = forgetful.stats.methods["POST"]

    again = await run_import(import_settings(forgetful, tmp_path))

    assert again.exit_code == 0, again.error
    assert counts(again, "created") == {"customers": 0, "contacts": 0, "onboardings": 0}
    assert counts(again, "adopted") == {
        "customers": sample_count("customers"),
        "contacts": sample_count("contacts"),
        "onboardings": sample_count("onboardings"),
    }
    assert_workspace_matches_samples(forgetful)
    # customers and contacts collide on slug and email (refused POSTs); onboardings send none
    posts = forgetful.stats.methods["POST"] - posts_before
    assert posts == sample_count("customers") + sample_count("contacts")
    assert forgetful.stats.methods["PATCH"] == 0  # every record already held the source's values
    # the look-ups: GET /me, one page of customers, and one list of contacts and one of
    # onboardings per customer that has them (each walked once, for all its rows)
    with_contacts = len({row["customer_external_id"] for row in source_rows("contacts")})
    with_onboardings = len({row["customer_external_id"] for row in source_rows("onboardings")})
    gets = forgetful.stats.methods["GET"] - 1
    assert gets == 1 + 1 + with_contacts + with_onboardings
    results = pl.read_csv(tmp_path / "import.results.csv", infer_schema=False)
    assert set(results["action"]) == {"adopted"}


# -- (c) onboardings of an adopted customer, matched by name ------------------------------------


def write_source(folder: Path, customers: str, onboardings: str) -> Path:
    folder.mkdir()
    (folder / "customers.csv").write_text(customers, encoding="utf-8")
    (folder / "onboardings.csv").write_text(onboardings, encoding="utf-8")
    return folder


async def test_two_onboardings_of_the_name_under_an_adopted_customer_fail_as_ambiguous(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    acme = await create(
        http, sandbox, "/customers", {"name": "Acme", "metadata": {"external_id": "001"}}
    )
    twins = [
        await create(
            http,
            sandbox,
            "/onboardings",
            {"customer_id": acme["id"], "name": "Acme rollout", "phase": phase},
        )
        for phase in ("review", "launch")
    ]
    source = write_source(
        tmp_path / "source",
        "external_id,name\n001,Acme\n",
        "customer_external_id,name,phase\n001,Acme rollout,review\n",
    )
    posts_before = sandbox.stats.methods["POST"]

    outcome = await run_import(import_settings(sandbox, tmp_path, source))

    assert outcome.exit_code == 1
    assert counts(outcome, "adopted") == {"customers": 1, "onboardings": 0}
    assert counts(outcome, "failed") == {"customers": 0, "onboardings": 1}
    assert counts(outcome, "created") == {"customers": 0, "onboardings": 0}
    [error] = pl.read_csv(tmp_path / "import.errors.csv", infer_schema=False).to_dicts()
    assert error["_pass"] == "onboardings"
    assert error["_error_code"] == "ambiguous_match"
    assert error["_error_message"] == (
        f"2 onboardings named 'Acme rollout' under customer {acme['id']} (customer "
        "'001', not created by this checkpoint) could each be this row's; none was "
        "adopted and none created. Delete or rename the extra ones in Pivotal, or give this "
        "row another name, then run again"
    )
    onboardings = sandbox.objects(WORKSPACE, "onboarding")
    assert sorted(o["phase"] for o in onboardings) == ["launch", "review"]  # nothing changed
    assert sandbox.stats.methods["POST"] - posts_before == 1  # the customer's refused POST

    # the user deletes the extra one, as the message says, and runs again: the row is not stuck
    deleted = await api(http, sandbox, "DELETE", f"/onboardings/{twins[1]['id']}")
    assert deleted.status == 200
    again = await run_import(import_settings(sandbox, tmp_path, source))
    assert again.exit_code == 0, again.error
    assert counts(again, "adopted") == {"customers": 0, "onboardings": 1}
    [kept] = sandbox.objects(WORKSPACE, "onboarding")
    assert kept["id"] == twins[0]["id"]


async def test_one_onboarding_of_the_name_is_adopted_and_patched_and_none_means_created(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    acme = await create(
        http, sandbox, "/customers", {"name": "Acme", "metadata": {"external_id": "001"}}
    )
    globex = await create(
        http, sandbox, "/customers", {"name": "Globex", "metadata": {"external_id": "002"}}
    )
    theirs = await create(
        http,
        sandbox,
        "/onboardings",
        {"customer_id": acme["id"], "name": "Acme rollout", "phase": "review", "notes": "kept"},
    )
    await create(http, sandbox, "/onboardings", {"customer_id": acme["id"], "name": "Other"})
    source = write_source(
        tmp_path / "source",
        "external_id,name\n001,Acme\n002,Globex\n",
        "customer_external_id,name,phase\n001,Acme rollout,launch\n002,Globex rollout,review\n",
    )

    outcome = await run_import(import_settings(sandbox, tmp_path, source))

    assert outcome.exit_code == 0, outcome.error
    assert counts(outcome, "adopted") == {"customers": 2, "onboardings": 1}
    assert counts(outcome, "created") == {"customers": 0, "onboardings": 1}
    by_name = {o["name"]: o for o in sandbox.objects(WORKSPACE, "onboarding")}
    assert set(by_name) == {"Acme rollout", "Other", "Globex rollout"}
    adopted = by_name["Acme rollout"]
    assert adopted["id"] == theirs["id"]
    assert adopted["customer_id"] == acme["id"]
    assert adopted["phase"] == "launch"  # the difference was PATCHed
    assert adopted["notes"] == "kept"  # a field the source does not set is left alone
    created = by_name["Globex rollout"]
    assert (created["customer_id"], created["phase"]) == (globex["id"], "review")
    results = pl.read_csv(tmp_path / "import.results.csv", infer_schema=False)
    onboarding_results = results.filter(pl.col("_pass") == "onboardings")
    assert onboarding_results.select("external_id", "action", "id").rows() == [
        ("001", "adopted", theirs["id"]),
        ("002", "created", created["id"]),
    ]


async def test_a_customer_adopted_by_an_earlier_run_still_has_its_onboardings_looked_up(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    acme = await create(
        http, sandbox, "/customers", {"name": "Acme", "metadata": {"external_id": "001"}}
    )
    theirs = await create(
        http, sandbox, "/onboardings", {"customer_id": acme["id"], "name": "Acme rollout"}
    )
    source = write_source(
        tmp_path / "source",
        "external_id,name\n001,Acme\n",
        "customer_external_id,name\n001,Acme rollout\n",
    )
    first = await run_import(import_settings(sandbox, tmp_path, source, passes=("customers",)))
    assert counts(first, "adopted") == {"customers": 1}

    # the next run reports the customer unchanged: it is still one this checkpoint adopted
    second = await run_import(import_settings(sandbox, tmp_path, source))

    assert second.exit_code == 0, second.error
    assert counts(second, "unchanged") == {"customers": 1, "onboardings": 0}
    assert counts(second, "adopted") == {"customers": 0, "onboardings": 1}
    [onboarding] = sandbox.objects(WORKSPACE, "onboarding")
    assert onboarding["id"] == theirs["id"]


async def test_an_onboarding_another_row_holds_is_never_adopted_by_name(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme", "metadata": {"external_id": "001"}})
    customers = "external_id,name\n001,Acme\n"
    header = "customer_external_id,external_id,name\n"
    source = write_source(tmp_path / "source", customers, header + "001,first,Setup\n")
    first = await run_import(import_settings(sandbox, tmp_path, source))
    assert counts(first, "created") == {"customers": 0, "onboardings": 1}
    (source / "onboardings.csv").write_text(
        header + "001,first,Setup\n001,second,Setup\n", encoding="utf-8"
    )

    second = await run_import(import_settings(sandbox, tmp_path, source))

    assert second.exit_code == 0, second.error
    assert counts(second, "created") == {"customers": 0, "onboardings": 1}
    assert counts(second, "unchanged") == {"customers": 1, "onboardings": 1}
    onboardings = sandbox.objects(WORKSPACE, "onboarding")
    assert [o["name"] for o in onboardings] == ["Setup", "Setup"]


# -- (d) customers and contacts resumed after the key window ------------------------------------


def test_customers_and_contacts_resumed_after_the_key_window_are_adopted_not_duplicated(
    tmp_path: Path,
) -> None:
    clock = DayLaterClock()
    with sandbox_in_thread(forgetful_config(clock, latency_ms=15)) as sandbox:
        checkpoint = tmp_path / "import.sqlite"
        customers = sample_count("customers")
        for posts, pass_name in ((20, "customers"), (customers + 30, "contacts")):
            process = start_import(sandbox, checkpoint)
            assert kill_when(process, posts_reach(sandbox, posts))
            assert states(checkpoint, pass_name).get("in_flight", 0) >= 1
            clock.let_a_day_pass(sandbox)

        resumed = start_import(sandbox, checkpoint)
        _, stderr = resumed.communicate(timeout=120)

        assert resumed.returncode == 0, stderr.decode()
        assert_workspace_matches_samples(sandbox)
        assert sandbox.stats.replays == 0
        assert sandbox.stats.statuses[409] >= 2  # slug_taken and email_taken, each adopted
