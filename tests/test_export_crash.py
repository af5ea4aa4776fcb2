"""Crash and resume: a real `bulk export` subprocess is SIGKILLed during each of its three walks
and run again each time; the final export holds every live row exactly once, is the export an
uninterrupted run writes (also with a newer API's extra fields, spread over the killed runs'
part files), and the resumed runs do not read again what the killed ones had written."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import polars as pl
import pytest
from helpers import ManualClock, create, kill_when
from polars.testing import assert_frame_equal

from bulk.checkpoint import Checkpoint
from bulk.exporting.exporter import CONTACT_BATCH, run_export
from bulk.exporting.state import ExportState
from bulk.interrupts import STOPPING
from bulk.sandbox import Sandbox, SandboxConfig, sandbox_in_thread
from bulk.schema import CUSTOMER, CUSTOMER_STATUSES, ONBOARDING, ONBOARDING_STATES
from bulk.settings import ConnectionSettings, ExportSettings

WORKSPACE = "acme"
KEY = f"pivotal_{WORKSPACE}"
START_MS = 1_780_000_000_000
PART_ROWS = 20
LATENCY_MS = 10
FILES = {"customer": "customers", "contact": "contacts", "onboarding": "onboardings"}
KILLS = (("customer", 1, 2), ("onboarding", 1, 1), ("contact", 1, 0), ("contact", 1, 40))
"""Where to kill each run: once a new part file of that type has appeared and the sandbox has
admitted that many more GETs (2: inside the status split of the page-filling tie group; 40: in
the middle of a batch of contacts walks)."""


@pytest.fixture
def slow_sandbox(clock: ManualClock, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """Latency makes every request take long enough for a kill to land mid-walk; the manual
    clock makes the tie groups. Parametrized indirectly: True for `--extra-fields` mode."""
    config = SandboxConfig(
        rate_limit=0,
        test_rate_limit=0,
        latency_ms=LATENCY_MS,
        clock=clock,
        extra_fields=getattr(request, "param", False),
    )
    with sandbox_in_thread(config) as sandbox:
        yield sandbox


def seed(sandbox: Sandbox, clock: ManualClock) -> None:
    """300 customers in tie groups across the page boundaries (a page-filling 100 among them),
    1 to 3 contacts each, and one onboarding each, 150 of them in one millisecond."""

    def at_ms(ms: int) -> None:
        clock.now = ms / 1000 + 0.0004

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            customers: list[dict[str, Any]] = []
            for offset, size in enumerate([63, 1, 99, 100, 37]):  # oldest group first
                at_ms(START_MS + offset)
                customers += await asyncio.gather(
                    *(
                        create(
                            http,
                            sandbox,
                            "/customers",
                            {"name": f"c{offset}-{i}", "status": CUSTOMER_STATUSES[i % 5]},
                        )
                        for i in range(size)
                    )
                )
            rng = random.Random(5)
            at_ms(START_MS + 100)
            await asyncio.gather(
                *(
                    create(
                        http,
                        sandbox,
                        f"/customers/{customer['id']}/contacts",
                        {"name": f"p{j}", "email": f"p{j}@c{k}.example"},
                    )
                    for k, customer in enumerate(customers)
                    for j in range(rng.randint(1, 3))
                )
            )
            first = 0
            for offset, size in enumerate([50, 150, 100]):
                at_ms(START_MS + 200 + offset)
                await asyncio.gather(
                    *(
                        create(
                            http,
                            sandbox,
                            "/onboardings",
                            {
                                "customer_id": customers[first + i]["id"],
                                "state": ONBOARDING_STATES[i % 4],
                            },
                        )
                        for i in range(size)
                    )
                )
                first += size

    asyncio.run(main())


def start_export(sandbox: Sandbox, out_dir: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "bulk",
        "export",
        str(out_dir),
        "--base-url",
        sandbox.base_url,
        "--part-rows",
        str(PART_ROWS),
        "--quiet",
    ]
    environment = {**os.environ, "PIVOTAL_API_KEY": KEY}
    return subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def parts(out_dir: Path, object_name: str) -> int:
    """Part files written whole so far (a killed write leaves only a `.tmp`)."""
    return len(list((out_dir / ".parts").glob(f"{FILES[object_name]}-*.parquet")))


def moment(
    sandbox: Sandbox, out_dir: Path, object_name: str, new_parts: int, then_gets: int
) -> Callable[[], bool]:
    """A condition: `new_parts` more parts of `object_name` exist, then `then_gets` more GETs."""
    target = parts(out_dir, object_name) + new_parts if out_dir.exists() else new_parts
    mark: list[int] = []

    def ready() -> bool:
        if not mark and parts(out_dir, object_name) >= target:
            mark.append(sandbox.stats.methods["GET"])
        return bool(mark) and sandbox.stats.methods["GET"] >= mark[0] + then_gets

    return ready


def walking(out_dir: Path) -> str | None:
    """The walk a stopped export was in, from its checkpoint."""
    checkpoint = Checkpoint(out_dir / ".bulk-export.sqlite")
    try:
        state = ExportState.load(checkpoint) or ExportState()
    finally:
        checkpoint.close()
    if not state.of(CUSTOMER).walk.finished:
        return "customer"
    if not state.of(ONBOARDING).walk.finished:
        return "onboarding"
    if not state.contacts_finished:
        return "contact"
    return None


def uninterrupted_gets(sandbox: Sandbox, out_dir: Path) -> int:
    """GETs of the same export run without a kill: the baseline."""
    settings = ExportSettings(
        connection=ConnectionSettings(api_key=KEY, base_url=sandbox.base_url),
        out_dir=out_dir,
        quiet=True,
        part_rows=PART_ROWS,
    )
    before = sandbox.stats.methods["GET"]
    outcome = asyncio.run(run_export(settings))
    assert outcome.exit_code == 0, outcome.warnings
    assert outcome.requests == sandbox.stats.methods["GET"] - before
    return outcome.requests


@pytest.mark.parametrize(
    "slow_sandbox", [False, True], ids=["normal", "extra_fields"], indirect=True
)
def test_killed_exports_resume_to_an_exact_export(
    slow_sandbox: Sandbox, clock: ManualClock, tmp_path: Path
) -> None:
    seed(slow_sandbox, clock)
    baseline = uninterrupted_gets(slow_sandbox, tmp_path / "baseline")
    out_dir = tmp_path / "export"
    gets_before = slow_sandbox.stats.methods["GET"]
    landed = []
    for object_name, new_parts, then_gets in KILLS:
        ready = moment(slow_sandbox, out_dir, object_name, new_parts, then_gets)
        process = start_export(slow_sandbox, out_dir)
        if kill_when(process, ready):
            landed.append((object_name, walking(out_dir)))

    final = start_export(slow_sandbox, out_dir)
    stdout, stderr = final.communicate(timeout=60)

    assert final.returncode == 0, stderr.decode()
    assert stdout.decode().splitlines()[0].split() == ["customers", "300"]
    # every kill landed inside the walk it was aimed at, before that walk had finished
    assert landed == [(name, name) for name, _, _ in KILLS]
    for object_name in FILES:
        ids = pl.read_parquet(out_dir / f"{FILES[object_name]}.parquet")["id"].to_list()
        assert [i for i, n in Counter(ids).items() if n > 1] == []
        assert set(ids) == {row["id"] for row in slow_sandbox.objects(WORKSPACE, object_name)}
        resumed = pl.read_parquet(out_dir / f"{FILES[object_name]}.parquet").sort("id")
        uninterrupted = pl.read_parquet(tmp_path / "baseline" / f"{FILES[object_name]}.parquet")
        assert_frame_equal(resumed, uninterrupted.sort("id"))  # columns, types and cells
    assert sorted(path.name for path in out_dir.iterdir()) == [
        ".bulk-export.sqlite",
        "contacts.parquet",
        "customers.parquet",
        "manifest.json",
        "onboardings.parquet",
    ]
    # A kill loses only what was read after the last saved part: in a list walk, the page in
    # flight and its filter-split requests (at most 1 + 5 statuses); in the contacts pass, the
    # batch in flight (at most CONTACT_BATCH one-page walks: nobody has over 100 contacts).
    # Everything written before is never read again: not /me, not a page, not a customer.
    lost_per_kill = max(1 + len(CUSTOMER_STATUSES), CONTACT_BATCH)
    total = slow_sandbox.stats.methods["GET"] - gets_before
    assert baseline <= total <= baseline + len(landed) * lost_per_kill
    assert total < 2 * baseline


def test_ctrl_c_finishes_the_batch_saves_and_exits_130_then_resumes_exactly(
    slow_sandbox: Sandbox, clock: ManualClock, tmp_path: Path
) -> None:
    seed(slow_sandbox, clock)
    baseline = uninterrupted_gets(slow_sandbox, tmp_path / "baseline")
    out_dir = tmp_path / "export"
    gets_before = slow_sandbox.stats.methods["GET"]
    ready = moment(slow_sandbox, out_dir, "contact", 1, 20)
    process = start_export(slow_sandbox, out_dir)
    deadline = time.monotonic() + 60
    while not ready():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)

    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 130, stderr.decode()
    assert stderr.decode().splitlines() == [  # SPEC: it says at once that it is stopping
        STOPPING,
        "Error: Interrupted. The checkpoint is saved; run the same command again to resume.",
    ]
    assert stdout.decode().splitlines()[0].split() == ["customers", "300"]
    assert walking(out_dir) == "contact"

    resumed = start_export(slow_sandbox, out_dir)
    _, resumed_stderr = resumed.communicate(timeout=60)

    assert resumed.returncode == 0, resumed_stderr.decode()
    for object_name in FILES:
        ids = pl.read_parquet(out_dir / f"{FILES[object_name]}.parquet")["id"].to_list()
        assert len(ids) == len(set(ids))
        assert set(ids) == {row["id"] for row in slow_sandbox.objects(WORKSPACE, object_name)}
    # a clean stop loses nothing: the batch in flight was finished and written
    assert slow_sandbox.stats.methods["GET"] - gets_before == baseline
