"""What `bulk undo` costs: requests per reverted object and the wall time for the samples.

A sandbox in its own process gives live keys 600 requests/min (a paid plan) and leaves test
keys unlimited. The samples are imported with the test key (its own rate bucket, so the
undo's window starts empty), into a workspace that already holds two customers the import
adopts and changes; then `bulk undo` reverts them with the live key, at 600/min: with the
conflict check (a GET before each DELETE or PATCH), and, on a second sandbox, with `--force`
(no check). The dry run's estimate is printed beside each measured time.

    python benchmarks/undo.py
    python benchmarks/undo.py --latency-ms 80 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from sandbox_process import running_server

from bulk.importing.importer import run_import
from bulk.settings import ConnectionSettings, ImportSettings, UndoSettings
from bulk.undoing.undoer import UndoOutcome, run_undo

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
LIVE_KEY = "pivotal_bench"
TEST_KEY = "pivotal_test_bench"
"""The same workspace as LIVE_KEY, in its own (unlimited) rate bucket."""
ADOPTED = (
    {"name": "Müller (CRM)", "slug": "mueller-soehne", "plan": "legacy",
     "metadata": {"external_id": "063581"}},
    {"name": "Café Crème SARL", "plan": "enterprise", "metadata": {"external_id": "00329"}},
)  # fmt: skip


def seed(base_url: str) -> None:
    """Two customers of the workspace's own that the import will adopt and change."""
    for body in ADOPTED:
        request = urllib.request.Request(
            f"{base_url}/customers",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 201


def connection(base_url: str, key: str, concurrency: int) -> ConnectionSettings:
    return ConnectionSettings(api_key=key, base_url=base_url, concurrency=concurrency)


async def imported(base_url: str, checkpoint: Path, concurrency: int) -> None:
    settings = ImportSettings(
        connection=connection(base_url, TEST_KEY, concurrency),
        folders=(SAMPLES,),
        checkpoint=checkpoint,
        quiet=True,
    )
    outcome = await run_import(settings)
    assert outcome.exit_code == 0, outcome.render()


async def undone(
    base_url: str, checkpoint: Path, concurrency: int, *, force: bool
) -> tuple[UndoOutcome, UndoOutcome, float]:
    """(the dry run, the undo, the undo's wall seconds)."""
    settings = UndoSettings(
        connection=connection(base_url, LIVE_KEY, concurrency),
        checkpoint=checkpoint,
        force=force,
        quiet=True,
    )
    dry = await run_undo(replace(settings, dry_run=True))
    started = time.monotonic()
    outcome = await run_undo(settings)
    seconds = time.monotonic() - started
    assert outcome.exit_code == 0, outcome.render()
    return dry, outcome, seconds


def report(label: str, dry: UndoOutcome, outcome: UndoOutcome, seconds: float) -> None:
    passes = outcome.summary.passes.values()
    reverted = sum(c.deleted + c.restored + c.gone for c in passes)
    deleted = sum(c.deleted for c in passes)
    restored = sum(c.restored for c in passes)
    requests = outcome.summary.requests
    assert dry.plan is not None
    print(
        f"{label:<16}{deleted:>8}{restored:>9}{requests:>10}{(requests - 1) / reverted:>10.2f}"
        f"{seconds:>9.1f}{dry.plan.eta_s:>10.1f}"
    )


def measured(
    options: tuple[str, ...], concurrency: int, *, force: bool
) -> tuple[UndoOutcome, UndoOutcome, float]:
    """Seed, import and undo on a sandbox of its own: each undo's window starts empty."""
    with tempfile.TemporaryDirectory() as temp, running_server(*options) as server:
        checkpoint = Path(temp) / "undo.sqlite"
        seed(server.base_url)
        asyncio.run(imported(server.base_url, checkpoint, concurrency))
        return asyncio.run(undone(server.base_url, checkpoint, concurrency, force=force))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    options = ("--rate-limit", "600", "--test-rate-limit", "0")
    options += ("--latency-ms", str(args.latency_ms))
    checked = measured(options, args.concurrency, force=False)
    forced = measured(options, args.concurrency, force=True)
    print(
        f"samples undone at 600 requests/min, {args.concurrency} in flight, "
        f"{args.latency_ms:g} ms added latency\n"
    )
    print(
        f"{'undo':<16}{'deleted':>8}{'restored':>9}{'requests':>10}{'req/obj':>10}"
        f"{'wall s':>9}{'dry-run s':>10}"
    )
    report("checked", *checked)
    report("--force", *forced)
    print("\nreq/obj: requests per reverted object, besides the run's one GET /me")


if __name__ == "__main__":
    main()
