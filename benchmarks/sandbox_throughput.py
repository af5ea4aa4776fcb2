"""How many requests per second the local Pivotal sandbox serves, with rate limiting off.

The sandbox must never be the bottleneck of an import: the target is at least 1,000 customer
POSTs per second from a local aiohttp client with 16 requests in flight, on a 2-core machine.

How it measures: for each storage mode (in memory, then a SQLite file in WAL mode) it starts a
fresh `bulk sandbox --port 0 --rate-limit 0 --test-rate-limit 0` in a separate process, so
the server and this client each get a core, and reads the base URL from its first line of
output. One aiohttp session (at most `--concurrency` connections) runs that many workers, which
take request numbers from a shared counter until the count is reached. Every POST /customers
carries a realistic body with a unique name and a unique `Idempotency-Key`, so the server does
the whole pipeline (auth, JSON, idempotency lookup, insert, stored result) each time. A warm-up
of 200 POSTs is not counted. With `--also-get`, list pages (`GET /customers?limit=100`) are
timed as well. The server is stopped with SIGINT at the end of each mode.

Run it by hand (it is a benchmark, not a test; nothing fails on time):

    python benchmarks/sandbox_throughput.py
    python benchmarks/sandbox_throughput.py --requests 20000 --also-get
    python benchmarks/sandbox_throughput.py --db /tmp/bench.sqlite3   # on-disk mode only

It prints one row per timed phase and exits non-zero if any request did not succeed.
Server CPU and peak RSS come from /proc and are shown as "-" where it is unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from sandbox_process import Server, running_server

TARGET_POSTS_PER_S = 1_000
WARMUP_REQUESTS = 200
API_KEY = "pivotal_bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class PhaseResult:
    """One timed phase: how long it took, each request's latency, and what went wrong."""

    mode: str
    phase: str
    requests: int
    seconds: float
    latencies_s: list[float]
    failures: int
    server_cpu_s: float | None
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Request:
    """What one worker sends: method, path, JSON body (or none), headers, expected status."""

    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    expected: int


RequestFactory = Callable[[str, int], Request]
"""Builds request `number` of a phase whose run id is the first argument."""


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far, from /proc (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float | None:
    """A process's peak resident set size (VmHWM), from /proc (None elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- the requests ----------------------------------------------------------------------------


def customer_post(run_id: str, number: int) -> Request:
    """A realistic POST /customers with a unique name (hence slug) and idempotency key."""
    body = {
        "name": f"Bench Customer {run_id} {number:07d}",
        "domain": f"customer-{number}.example.com",
        "status": "active" if number % 3 else "onboarding",
        "plan": ("starter", "growth", "enterprise")[number % 3],
        "mrr": 500 + (number % 97) * 25,
        "tags": ["benchmark", f"cohort-{number % 12}", "imported"],
        "metadata": {"source": "sandbox_throughput", "run": run_id, "row": number},
    }
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": f"bench-{run_id}-{number}",
    }
    return Request("POST", "/customers", json.dumps(body).encode(), headers, 201)


def list_page(run_id: str, number: int) -> Request:
    return Request("GET", "/customers?limit=100", None, {}, 200)


async def run_phase(
    session: aiohttp.ClientSession,
    base_url: str,
    make_request: RequestFactory,
    count: int,
    concurrency: int,
) -> tuple[float, list[float], int]:
    """Send `count` requests from `concurrency` workers; (seconds, latencies, failures)."""
    run_id = uuid.uuid4().hex[:8]
    numbers = itertools.count()
    latencies: list[float] = []
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for number in numbers:
            if number >= count:
                return
            request: Request = make_request(run_id, number)
            started = time.perf_counter()
            try:
                async with session.request(
                    request.method,
                    base_url + request.path,
                    data=request.body,
                    headers=request.headers,
                ) as response:
                    await response.read()
                    ok = response.status == request.expected
            except aiohttp.ClientError:
                ok = False
            latencies.append(time.perf_counter() - started)
            if not ok:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, failures


async def benchmark_server(
    mode: str, server: Server, requests: int, concurrency: int, also_get: bool
) -> list[PhaseResult]:
    """Warm up, then time the POST phase (and the GET phase if asked) against one server."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    phases: list[tuple[str, RequestFactory]] = [("POST /customers", customer_post)]
    if also_get:
        phases.append(("GET /customers?limit=100", list_page))
    results: list[PhaseResult] = []
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        _, _, warmup_failures = await run_phase(
            session, server.base_url, customer_post, WARMUP_REQUESTS, concurrency
        )
        if warmup_failures:
            raise RuntimeError(f"{warmup_failures} warm-up requests failed")
        for phase, make_request in phases:
            server_cpu_before = cpu_seconds(server.process.pid)
            client_cpu_before = time.process_time()
            seconds, latencies, failures = await run_phase(
                session, server.base_url, make_request, requests, concurrency
            )
            server_cpu_after = cpu_seconds(server.process.pid)
            server_cpu = (
                server_cpu_after - server_cpu_before
                if server_cpu_before is not None and server_cpu_after is not None
                else None
            )
            results.append(
                PhaseResult(
                    mode,
                    phase,
                    requests,
                    seconds,
                    latencies,
                    failures,
                    server_cpu,
                    time.process_time() - client_cpu_before,
                )
            )
    return results


# -- reporting -------------------------------------------------------------------------------


def percentile_ms(latencies_s: list[float], share: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not latencies_s:
        return 0.0
    ordered = sorted(latencies_s)
    index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
    return ordered[index] * 1000


def _share(cpu_s: float | None, seconds: float) -> str:
    return f"{100 * cpu_s / seconds:.0f}%" if cpu_s is not None and seconds else "-"


def print_table(results: list[PhaseResult], peak_rss: dict[str, float | None]) -> None:
    header = (
        f"{'mode':<7} {'phase':<25} {'requests':>8} {'seconds':>8} {'req/s':>8} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'failed':>6} {'srv CPU':>7} "
        f"{'cli CPU':>7} {'srv RSS':>8}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        rss = peak_rss.get(result.mode)
        print(
            f"{result.mode:<7} {result.phase:<25} {result.requests:>8,} "
            f"{result.seconds:>8.2f} {result.rate:>8,.0f} "
            f"{percentile_ms(result.latencies_s, 0.50):>7.2f} "
            f"{percentile_ms(result.latencies_s, 0.95):>7.2f} "
            f"{percentile_ms(result.latencies_s, 0.99):>7.2f} {result.failures:>6} "
            f"{_share(result.server_cpu_s, result.seconds):>7} "
            f"{_share(result.client_cpu_s, result.seconds):>7} "
            f"{f'{rss:.0f} MiB' if rss is not None else '-':>8}"
        )
    print()
    for result in results:
        if result.phase.startswith("POST"):
            verdict = "met" if result.rate >= TARGET_POSTS_PER_S else "NOT met"
            print(
                f"{result.mode}: {result.rate:,.0f} POST/s -> target of "
                f"{TARGET_POSTS_PER_S:,} POST/s {verdict}"
            )


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--requests", type=int, default=10_000, help="timed requests per phase (default: 10,000)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="requests in flight and connections (default: 16)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        help="SQLite file to benchmark the on-disk mode only "
        "(default: in memory, then a file in a temporary directory)",
    )
    parser.add_argument(
        "--also-get", action="store_true", help="also time GET /customers?limit=100 list pages"
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    return args


def modes(db: Path | None, temp_dir: Path) -> list[tuple[str, Path | None]]:
    if db is not None:
        return [("disk", db)]
    return [("memory", None), ("disk", temp_dir / "sandbox.sqlite3")]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"{args.requests:,} timed requests per phase, {args.concurrency} in flight, "
        f"{WARMUP_REQUESTS} warm-up POSTs, {os.cpu_count()} CPUs\n"
    )
    results: list[PhaseResult] = []
    peak_rss: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="bulk-bench-") as temp:
        for mode, db_path in modes(args.db, Path(temp)):
            options = ("--rate-limit", "0", "--test-rate-limit", "0")
            db_options = ("--db", str(db_path)) if db_path is not None else ()
            with running_server(*options, *db_options) as server:
                results += asyncio.run(
                    benchmark_server(mode, server, args.requests, args.concurrency, args.also_get)
                )
                peak_rss[mode] = peak_rss_mib(server.process.pid)
    print_table(results, peak_rss)
    failed = sum(result.failures for result in results)
    if failed:
        print(f"\nFAILED: {failed} requests did not succeed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
