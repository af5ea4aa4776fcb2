"""What `bulk import` costs on top of the HTTP it sends: rows/s against a bare aiohttp loop.

A sandbox in its own process runs with rate limiting off. The bare loop POSTs the very payloads
the importer would send (planned from the same CSV), with the same concurrency and an
Idempotency-Key each; then `bulk import` imports the same file into another workspace, with
everything it does for safety: validation, the checkpoint row marked in flight before each
request and done after it, the results file. Target: at least 0.8 of the bare loop's rate.

    python benchmarks/import_overhead.py
    python benchmarks/import_overhead.py --customers 20000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
from generate_customers import write_customers
from import_rate_fidelity import planned_payloads, timed_import
from sandbox_process import running_server

from bulk.importing.rows import PlannedRow
from bulk.importing.sending import idempotency_key

TARGET_RATIO = 0.8


async def bare_loop(base_url: str, rows: list[PlannedRow], concurrency: int) -> float:
    """Seconds to POST every payload with `concurrency` workers and nothing else."""
    pending = iter(rows)
    headers = {"Authorization": "Bearer pivotal_bare"}

    async def worker(session: aiohttp.ClientSession) -> None:
        for row in pending:
            key = {"Idempotency-Key": idempotency_key("customers", row.key)}
            async with session.post(
                f"{base_url}/customers", json=row.payload, headers={**headers, **key}
            ) as response:
                await response.read()
                response.raise_for_status()

    connector = aiohttp.TCPConnector(limit=concurrency)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return time.monotonic() - started


async def bulk_import(base_url: str, source: Path, workdir: Path, concurrency: int) -> float:
    _, seconds = await timed_import(base_url, source, workdir / "overhead.sqlite", concurrency)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        source = write_customers(args.customers, workdir / "customers.csv")
        rows = planned_payloads(source)
        with running_server("--rate-limit", "0", "--test-rate-limit", "0") as server:
            bare_s = asyncio.run(bare_loop(server.base_url, rows, args.concurrency))
            bulk_s = asyncio.run(bulk_import(server.base_url, source, workdir, args.concurrency))
    bare_rate, bulk_rate = args.customers / bare_s, args.customers / bulk_s
    ratio = bulk_rate / bare_rate
    print(f"{args.customers} customers, {args.concurrency} in flight, rate limiting off\n")
    print(f"{'client':<14}{'seconds':>9}{'rows/s':>9}")
    print(f"{'bare aiohttp':<14}{bare_s:>9.2f}{bare_rate:>9.0f}")
    print(f"{'bulk import':<14}{bulk_s:>9.2f}{bulk_rate:>9.0f}")
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"\nbulk import runs at {ratio:.2f} of the bare loop (target {TARGET_RATIO}: {verdict})")


if __name__ == "__main__":
    main()
