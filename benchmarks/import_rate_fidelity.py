"""How close `bulk import` runs to the sliding-window optimum, next to a naive client.

A sandbox in its own process limits each key to `--rate` requests per 60-second sliding window
and adds `--latency-ms` to every request. Two clients import the same `--customers` customers at
the same time, each with its own key (so its own window):

- `bulk import` (4 in flight), learning the limit from the `X-RateLimit-*` headers;
- a naive client (4 in flight; on a 429 it sleeps `Retry-After` and tries again), the pattern of
  the Pivotal docs' bulk guide.

The optimum is computed by simulating the best any client can do: a full window's worth of
requests as fast as the concurrency allows, then each further request the moment an old one
leaves the window. Run it by hand (it takes a little over two minutes with the defaults):

    python benchmarks/import_rate_fidelity.py
    python benchmarks/import_rate_fidelity.py --customers 300 --rate 120   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from generate_customers import write_customers
from sandbox_process import running_server

from bulk.api.estimate import Pace, estimate_seconds
from bulk.api.retry import parse_retry_after
from bulk.importing.importer import ImportOutcome, run_import
from bulk.importing.rows import PlannedRow, RowPlanner
from bulk.importing.sources import SourceFile, open_source
from bulk.settings import ConnectionSettings, ImportSettings

WINDOW_S = 60.0
CONCURRENCY = 4


@dataclass(frozen=True)
class Result:
    client: str
    requests: int
    seconds: float
    rate_limited: int


def optimum_seconds(
    requests: int, limit: int, window_s: float, concurrency: int, latency_s: float
) -> float:
    """The shortest possible wall time against a sliding window: the governor's greedy
    schedule (`bulk.api.estimate`) with the exact window and no margin."""
    return estimate_seconds(requests, Pace(limit, window_s, latency_s, concurrency))


async def timed_import(
    base_url: str, source: Path, checkpoint: Path, concurrency: int
) -> tuple[ImportOutcome, float]:
    """`bulk import` of a customers file as key `pivotal_bulk`: its outcome and wall seconds."""
    settings = ImportSettings(
        connection=ConnectionSettings(
            api_key="pivotal_bulk", base_url=base_url, concurrency=concurrency
        ),
        files={"customers": source},
        checkpoint=checkpoint,
        quiet=True,
    )
    started = time.monotonic()
    outcome = await run_import(settings)
    seconds = time.monotonic() - started
    if outcome.exit_code != 0:
        raise RuntimeError(f"bulk import failed: {outcome.error}")
    return outcome, seconds


async def run_bulk(base_url: str, source: Path, workdir: Path) -> Result:
    outcome, seconds = await timed_import(base_url, source, workdir / "bulk.sqlite", CONCURRENCY)
    summary = outcome.summary
    return Result("bulk import", summary.requests, seconds, summary.rate_limited)


async def run_naive(base_url: str, payloads: list[PlannedRow]) -> Result:
    """Four workers; each request is retried after sleeping Retry-After whenever it gets a 429."""
    pending = iter(payloads)
    sent = 0
    rate_limited = 0
    headers = {"Authorization": "Bearer pivotal_naive"}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent, rate_limited
        for row in pending:
            while True:
                sent += 1
                async with session.post(
                    f"{base_url}/customers", json=row.payload, headers=headers
                ) as response:
                    await response.read()
                    if response.status != 429:
                        response.raise_for_status()
                        break
                    rate_limited += 1
                    wait = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
                    await asyncio.sleep(wait or 1.0)

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return Result("naive (sleep on 429)", sent, time.monotonic() - started, rate_limited)


def planned_payloads(source: Path) -> list[PlannedRow]:
    opened = open_source(SourceFile("customers", source, "csv"))
    planner = RowPlanner("customers", opened.columns)
    rows = []
    for batch in opened.batches():
        for record in batch:
            planned = planner.plan(record)
            assert isinstance(planned, PlannedRow)
            rows.append(planned)
    return rows


async def compare(base_url: str, source: Path, workdir: Path) -> list[Result]:
    return list(
        await asyncio.gather(
            run_bulk(base_url, source, workdir), run_naive(base_url, planned_payloads(source))
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--rate", type=int, default=600, help="requests per 60 s window")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        source = write_customers(args.customers, workdir / "customers.csv")
        options = (
            "--rate-limit",
            str(args.rate),
            "--test-rate-limit",
            str(args.rate),
            "--rate-window",
            str(WINDOW_S),
            "--latency-ms",
            str(args.latency_ms),
        )
        with running_server(*options) as server:
            results = asyncio.run(compare(server.base_url, source, workdir))
    print(
        f"{args.customers} customers, {args.rate} requests per {WINDOW_S:.0f} s sliding "
        f"window, {args.latency_ms:.0f} ms latency, {CONCURRENCY} in flight\n"
    )
    print(f"{'client':<22}{'requests':>9}{'seconds':>9}{'optimum':>9}{'ratio':>7}{'429s':>6}")
    for result in results:
        best = optimum_seconds(
            result.requests - result.rate_limited,
            args.rate,
            WINDOW_S,
            CONCURRENCY,
            args.latency_ms / 1000,
        )
        print(
            f"{result.client:<22}{result.requests:>9}{result.seconds:>9.1f}{best:>9.1f}"
            f"{result.seconds / best:>7.3f}{result.rate_limited:>6}"
        )
    steady = (args.customers + 1) * WINDOW_S / args.rate
    print(
        f"\nA steady pacer (one request every {WINDOW_S / args.rate:.2f} s) needs {steady:.1f} s."
    )


if __name__ == "__main__":
    main()
