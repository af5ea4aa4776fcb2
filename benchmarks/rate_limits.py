"""The whole `bulk import` process against the rate limit: the window, a shared key, no limit.

Each figure is the wall time of a real `python -m bulk import` subprocess (start-up, planning,
sending, files) against a sandbox in its own process whose latency jitters. Run by hand:

    python benchmarks/rate_limits.py window        # issue 8 item 14: 1,500 customers at 600/60 s
    python benchmarks/rate_limits.py shared        # item 15: another client on the key at 1/4
    python benchmarks/rate_limits.py unthrottled   # item 16: 20k customers + 20k contacts
    python benchmarks/rate_limits.py estimate      # item 6: the dry run's ETA against real runs

- `window`: the ratio of the sliding-window optimum (a full window's worth as fast as the
  concurrency allows, then each request the moment an old one leaves; the mean latency) to the
  process's wall time, and the 429s. Target ≥ 0.98 with 0 x 429.
- `shared`: a second client sends one request every `window / (limit / 4)` s on the same key for
  the whole run. Printed: the run's 429s, the share of the other client's requests refused, and
  the run's throughput against what the limit minus the other client and the headroom leaves.
  Targets: ≤ 3 x 429, throughput ≥ 0.9 of that.
- `unthrottled`: limits off, 8 in flight; a bare aiohttp loop posting the same bodies (customers,
  then contacts under them) against the whole `bulk import`. Target ≥ 0.8 of the bare loop.
  By default the server answers at once, so the two processes share the machine's cores and
  every microsecond of the client's counts; `--latency-ms 5 --jitter-ms 5` gives the server
  a jittering latency instead (50 to 60 ms per hop, as `window` has, would hide the client).
  `--bare-busy-us 200` gives the bare loop that much busy work before each POST: a bare client
  that costs what `bulk`'s does per request, to tell the client's pace from the rest.
- `estimate`: `--dry-run` then the real run at 60/min and 600/min; the ETA against the real wall
  time. Target: within 15 %.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from sandbox_process import Server, running_server

from bulk.api.estimate import Pace, estimate_seconds

WINDOW_S = 60.0
LATENCY_MS = 50.0
JITTER_MS = 10.0


@dataclass(frozen=True)
class Run:
    seconds: float
    report: dict[str, object]
    stderr: str


def write_sources(folder: Path, customers: int, contacts: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "customers.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["external_id", "name", "domain", "status", "plan", "mrr", "tags"])
        for n in range(customers):
            writer.writerow(
                [
                    f"C{n:06d}",
                    f"Company {n}",
                    f"c{n}.example.com",
                    "active",
                    "pro",
                    n % 5000,
                    "emea;smb",
                ]
            )
    if contacts:
        with (folder / "contacts.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["customer_external_id", "name", "email", "title", "is_primary"])
            for n in range(contacts):
                writer.writerow(
                    [f"C{n % customers:06d}", f"Person {n}", f"p{n}@example.com", "CTO", "true"]
                )
    return folder


def bulk_import(
    base_url: str,
    source: Path,
    workdir: Path,
    *extra: str,
    key: str = "pivotal_bulk",
    concurrency: int = 4,
) -> Run:
    """Time a whole `bulk import` process, from spawn to exit."""
    report = workdir / f"report-{time.monotonic_ns()}.json"
    command = [
        sys.executable,
        "-m",
        "bulk",
        "import",
        str(source),
        "--base-url",
        base_url,
        "--api-key",
        key,
        "--checkpoint",
        str(workdir / "bench.sqlite"),
        "--quiet",
        "--concurrency",
        str(concurrency),
        "--report",
        str(report),
        *extra,
    ]
    started = time.monotonic()
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if finished.returncode != 0:
        raise RuntimeError(f"bulk import exited {finished.returncode}: {finished.stderr}")
    return Run(seconds, json.loads(report.read_text()), finished.stdout + finished.stderr)


def optimum(requests: int, limit: int, concurrency: int) -> float:
    latency_s = (LATENCY_MS + JITTER_MS / 2) / 1000
    return estimate_seconds(requests, Pace(limit, WINDOW_S, latency_s, concurrency))


def sandbox_options(rate: int) -> tuple[str, ...]:
    return (
        "--rate-limit",
        str(rate),
        "--test-rate-limit",
        str(rate),
        "--rate-window",
        str(WINDOW_S),
        "--latency-ms",
        str(LATENCY_MS),
        "--latency-jitter-ms",
        str(JITTER_MS),
    )


def summary_of(run: Run) -> dict[str, object]:
    summary = run.report["summary"]
    assert isinstance(summary, dict)
    return summary


def window(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory() as temp,
        running_server(*sandbox_options(args.rate)) as server,
    ):
        workdir = Path(temp)
        source = write_sources(workdir / "source", args.customers, 0)
        run = bulk_import(server.base_url, source, workdir)
    summary = summary_of(run)
    requests = int(summary["requests"])  # type: ignore[call-overload]
    best = optimum(requests, args.rate, 4)
    print(
        f"{args.customers} customers at {args.rate}/{WINDOW_S:.0f} s, latency "
        f"{LATENCY_MS:.0f}-{LATENCY_MS + JITTER_MS:.0f} ms, 4 in flight"
    )
    print(
        f"whole process {run.seconds:.1f} s, optimum {best:.1f} s, ratio {best / run.seconds:.3f}, "
        f"429s {summary['rate_limited']}, requests {requests}"
    )


async def other_client(
    base_url: str, key: str, interval_s: float, stop: asyncio.Event
) -> tuple[int, int]:
    """One GET /me every `interval_s` until `stop`: (sent, refused)."""
    sent = refused = 0
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(f"{base_url}/me", headers=headers) as response:
                await response.read()
                sent += 1
                refused += response.status == 429
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
    return sent, refused


async def shared_run(
    base_url: str, source: Path, workdir: Path, rate: int, headroom: str
) -> tuple[Run, int, int]:
    stop = asyncio.Event()
    other = asyncio.create_task(other_client(base_url, "pivotal_bulk", WINDOW_S / (rate / 4), stop))
    await asyncio.sleep(WINDOW_S / 4)  # the integration was there first
    extra = ("--headroom", headroom) if headroom else ()
    run = await asyncio.to_thread(bulk_import, base_url, source, workdir, *extra)
    stop.set()
    sent, refused = await other
    return run, sent, refused


def shared(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory() as temp,
        running_server(*sandbox_options(args.rate)) as server,
    ):
        workdir = Path(temp)
        source = write_sources(workdir / "source", args.customers, 0)
        run, sent, refused = asyncio.run(
            shared_run(server.base_url, source, workdir, args.rate, args.headroom)
        )
    summary = summary_of(run)
    headroom = float(args.headroom or 10) / 100
    left_per_s = (args.rate * (1 - headroom) - args.rate / 4) / WINDOW_S
    ours_per_s = int(summary["requests"]) / run.seconds  # type: ignore[call-overload]
    print(
        f"{args.customers} customers at {args.rate}/{WINDOW_S:.0f} s with another client at "
        f"{args.rate // 4}/window on the key, headroom {headroom:.0%}"
    )
    print(
        f"whole process {run.seconds:.1f} s, 429s {summary['rate_limited']}; the other client: "
        f"{refused} of {sent} refused ({refused / max(sent, 1):.1%})"
    )
    print(
        f"throughput {ours_per_s * 60:.0f}/min against {left_per_s * 60:.0f}/min left "
        f"({ours_per_s / left_per_s:.2f})"
    )


async def bare_loop(base_url: str, source: Path, concurrency: int, busy_s: float = 0.0) -> float:
    """Seconds to POST the same bodies, customers then contacts, with nothing else; `busy_s`
    of busy work before each POST stands in for a client that costs more per request."""
    customers = list(csv.DictReader((source / "customers.csv").open()))
    contacts = list(csv.DictReader((source / "contacts.csv").open()))
    headers = {"Authorization": "Bearer pivotal_bare"}
    ids: dict[str, str] = {}

    async def post(
        session: aiohttp.ClientSession, path: str, body: dict[str, object], key: str
    ) -> dict[str, object]:
        busy_until = time.perf_counter() + busy_s
        while time.perf_counter() < busy_until:
            pass
        async with session.post(
            f"{base_url}{path}", json=body, headers={**headers, "Idempotency-Key": key}
        ) as response:
            response.raise_for_status()
            return await response.json()  # type: ignore[no-any-return]

    async def customers_worker(session: aiohttp.ClientSession, rows: list[dict[str, str]]) -> None:
        while rows:
            row = rows.pop()
            body = {
                "name": row["name"],
                "domain": row["domain"],
                "status": row["status"],
                "plan": row["plan"],
                "mrr": int(row["mrr"]),
                "tags": row["tags"].split(";"),
                "metadata": {"external_id": row["external_id"]},
            }
            ids[row["external_id"]] = str(
                (await post(session, "/customers", body, row["external_id"]))["id"]
            )

    async def contacts_worker(session: aiohttp.ClientSession, rows: list[dict[str, str]]) -> None:
        while rows:
            row = rows.pop()
            body = {
                "name": row["name"],
                "email": row["email"],
                "title": row["title"],
                "is_primary": True,
            }
            parent = ids[row["customer_external_id"]]
            await post(session, f"/customers/{parent}/contacts", body, row["email"])

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(customers_worker(session, customers) for _ in range(concurrency)))
        await asyncio.gather(*(contacts_worker(session, contacts) for _ in range(concurrency)))
    return time.monotonic() - started


def unthrottled(args: argparse.Namespace) -> None:
    """Each client against a fresh sandbox of its own (a server's tables grow as it is used),
    alternating, `--rounds` times. This machine's speed drifts by 10 % and more from one minute
    to the next, so each round's two runs are compared with each other (the median of those
    ratios is the figure), and the CPU each process used is printed beside the wall times."""
    rounds: list[tuple[Timed, Timed]] = []
    unlimited: tuple[str, ...] = ("--rate-limit", "0", "--test-rate-limit", "0")
    if args.latency_ms:
        unlimited += ("--latency-ms", str(args.latency_ms))
        unlimited += ("--latency-jitter-ms", str(args.jitter_ms))
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        source = write_sources(workdir / "source", args.customers, args.customers)
        for round_number in range(args.rounds):
            with running_server(*unlimited) as server:
                with CpuUsed() as bare_client:
                    bare_s = asyncio.run(
                        bare_loop(server.base_url, source, 8, args.bare_busy_us / 1e6)
                    )
                bare = Timed(bare_s, bare_client.seconds, server_cpu_s(server))
            with running_server(*unlimited) as server:
                run_dir = workdir / f"run-{round_number}"
                run_dir.mkdir()
                with CpuUsed(children=True) as bulk_client:
                    bulk_s = bulk_import(server.base_url, source, run_dir, concurrency=8).seconds
                whole = Timed(bulk_s, bulk_client.seconds, server_cpu_s(server))
            rounds.append((bare, whole))
            ratio = bare.wall_s / whole.wall_s
            print(f"round {round_number + 1}: bare {bare}; bulk {whole}; ratio {ratio:.2f}")
    print(
        f"{args.customers} customers + {args.customers} contacts, 8 in flight, limits off, "
        f"latency {args.latency_ms:g} ms + up to {args.jitter_ms:g} ms, {args.rounds} rounds"
    )
    ratios = [bare.wall_s / whole.wall_s for bare, whole in rounds]
    print(
        f"bare aiohttp loop {statistics.median(b.wall_s for b, _ in rounds):.1f} s, whole bulk "
        f"import process {statistics.median(w.wall_s for _, w in rounds):.1f} s; ratio per "
        f"round {sorted(round(r, 2) for r in ratios)}, median {statistics.median(ratios):.2f} "
        "(target 0.8)"
    )


@dataclass(frozen=True)
class Timed:
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float

    def __str__(self) -> str:
        return (
            f"{self.wall_s:.1f} s (client CPU {self.client_cpu_s:.1f} s, "
            f"server {self.server_cpu_s:.1f} s)"
        )


class CpuUsed:
    """CPU seconds (user + system) this process, or its finished children, used inside."""

    def __init__(self, *, children: bool = False) -> None:
        self.who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
        self.seconds = 0.0

    def __enter__(self) -> CpuUsed:
        self._start = self._now()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = self._now() - self._start

    def _now(self) -> float:
        usage = resource.getrusage(self.who)
        return usage.ru_utime + usage.ru_stime


def server_cpu_s(server: Server) -> float:
    """CPU seconds the sandbox process used so far (Linux: /proc/PID/stat)."""
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def estimate(args: argparse.Namespace) -> None:
    for rate, customers in ((60, args.customers_at_60), (600, args.customers)):
        with (
            tempfile.TemporaryDirectory() as temp,
            running_server(*sandbox_options(rate)) as server,
        ):
            workdir = Path(temp)
            source = write_sources(workdir / "source", customers, 0)
            dry = bulk_import(server.base_url, source, workdir, "--dry-run", key="pivotal_dry")
            plan = dry.report["plan"]
            assert isinstance(plan, dict)
            time.sleep(WINDOW_S + 1)  # let the dry run's GET /me leave the window
            real = bulk_import(server.base_url, source, workdir)
        eta = float(plan["eta_s"])
        print(
            f"{customers} customers at {rate}/min: ETA {eta:.1f} s, real {real.seconds:.1f} s, "
            f"error {abs(eta - real.seconds) / real.seconds:.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, default in (
        ("window", 1500),
        ("shared", 1500),
        ("unthrottled", 20_000),
        ("estimate", 1500),
    ):
        command = commands.add_parser(name)
        command.add_argument("--customers", type=int, default=default)
        command.add_argument("--rate", type=int, default=600)
    commands.choices["shared"].add_argument("--headroom", default="")
    commands.choices["unthrottled"].add_argument("--rounds", type=int, default=3)
    commands.choices["unthrottled"].add_argument("--latency-ms", type=float, default=0.0)
    commands.choices["unthrottled"].add_argument("--jitter-ms", type=float, default=0.0)
    commands.choices["unthrottled"].add_argument("--bare-busy-us", type=float, default=0.0)
    commands.choices["estimate"].add_argument("--customers-at-60", type=int, default=150)
    args = parser.parse_args()
    {"window": window, "shared": shared, "unthrottled": unthrottled, "estimate": estimate}[
        args.command
    ](args)


if __name__ == "__main__":
    main()
