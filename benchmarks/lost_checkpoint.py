"""A lost checkpoint a day later: what the second import sends, and what it costs.

Imports N customers with one contact and one onboarding each into a sandbox, moves the
checkpoint away, lets a day pass on the sandbox's clock (the API keeps idempotency keys 24
hours), and imports the same source again. Prints each run's actions per pass, its requests by
method, and how many records the workspace holds twice (issue 9 measured 995 duplicated
onboardings of 1,000 before the look-ups).

    python benchmarks/lost_checkpoint.py
    python benchmarks/lost_checkpoint.py --customers 5000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path

import polars as pl
from generate_customers import customers_frame

from bulk.importing.importer import ImportOutcome, run_import
from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox
from bulk.settings import ConnectionSettings, ImportSettings

KEY = "pivotal_lost"
WORKSPACE = "lost"
A_DAY_AND_A_MINUTE_S = 24 * 60 * 60 + 60


class DayLaterClock:
    """The wall clock, until a day is let pass."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


def write_source(folder: Path, count: int) -> Path:
    customers = customers_frame(count)
    keys = customers["external_id"]
    folder.mkdir(parents=True)
    customers.write_csv(folder / "customers.csv")
    pl.DataFrame(
        {
            "customer_external_id": keys,
            "name": "Contact " + keys,
            "email": "contact-" + keys + "@example.com",
        }
    ).write_csv(folder / "contacts.csv")
    pl.DataFrame(
        {"customer_external_id": keys, "name": "Rollout " + keys, "phase": "review"}
    ).write_csv(folder / "onboardings.csv")
    return folder


async def timed_import(sandbox: Sandbox, source: Path, checkpoint: Path) -> tuple[str, str]:
    """One import: its actions per pass and its requests by method."""
    before = Counter(sandbox.stats.methods)
    settings = ImportSettings(
        connection=ConnectionSettings(api_key=KEY, base_url=sandbox.base_url, concurrency=8),
        folders=(source,),
        checkpoint=checkpoint,
        quiet=True,
    )
    started = time.monotonic()
    outcome = await run_import(settings)
    elapsed = time.monotonic() - started
    requests = Counter(sandbox.stats.methods)
    requests.subtract(before)
    return actions(outcome), f"{dict(requests)} in {elapsed:.1f} s, exit {outcome.exit_code}"


def actions(outcome: ImportOutcome) -> str:
    return "; ".join(
        f"{name}: created {c.created}, adopted {c.adopted}, updated {c.updated}, failed {c.failed}"
        for name, c in outcome.summary.passes.items()
    )


def duplicates(sandbox: Sandbox) -> dict[str, int]:
    """Records held more than once: customers by external_id, children by name."""
    customers = [c["metadata"]["external_id"] for c in sandbox.objects(WORKSPACE, "customer")]
    contacts = [c["email"] for c in sandbox.objects(WORKSPACE, "contact")]
    onboardings = [o["name"] for o in sandbox.objects(WORKSPACE, "onboarding")]
    return {
        name: len(values) - len(set(values))
        for name, values in (
            ("customers", customers),
            ("contacts", contacts),
            ("onboardings", onboardings),
        )
    }


async def main(count: int) -> None:
    clock = DayLaterClock()
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, clock=clock)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        source = write_source(workdir / "source", count)
        async with running_sandbox(config) as sandbox:
            first = await timed_import(sandbox, source, workdir / "first.sqlite")
            clock.offset_s += A_DAY_AND_A_MINUTE_S
            second = await timed_import(sandbox, source, workdir / "second.sqlite")
            held_twice = duplicates(sandbox)
    print(f"{count} customers, each with one contact and one onboarding")
    print(f"first import:  {first[0]}\n               {first[1]}")
    print(f"a day later, checkpoint lost:\n  {second[0]}\n  {second[1]}")
    print(f"held twice: {held_twice}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    asyncio.run(main(parser.parse_args().customers))
