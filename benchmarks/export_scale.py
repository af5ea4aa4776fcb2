"""`bulk export` at scale: throughput, memory and requests, then wall time under a rate limit.

1. A workspace of 100,000 customers (1-3 contacts for 10,000 of them, an onboarding for
   10,000) exported with rate limiting off: rows/s, peak RSS of the export process (target at
   most 300 MB) and requests sent next to the minimum possible.
2. A smaller workspace (1,500 customers, contacts and onboardings for 150) exported against a
   limit of 600 requests per 60-second sliding window: wall time next to three yardsticks.
   - "first 600 at once, then 10/s": max(0, requests - 600) / 10 s. A lower bound no client
     reaches: 600 requests sent at once all leave the window together 60 s later, so no
     60-second span can hold more than 600 of them.
   - The sliding-window optimum: 600 at once, the next 600 the moment those leave the window,
     and so on: 60 s x (ceil(requests / 600) - 1), plus the (tiny) time to send the last lot.
   - A steady pacer: requests / rate.

Each workspace is written straight into a sandbox SQLite file through the sandbox's own store
(one transaction, a distinct `created_at` per object), then served by `bulk sandbox --db` in its
own process, and `bulk export` runs in another, so the exporter and the server each get a core.
The export's files are checked against what was seeded (the script exits 1 if they differ);
times are reported, not asserted. Part 1 takes under a minute, part 2 about two.

    python benchmarks/export_scale.py
    python benchmarks/export_scale.py --part 1 --customers 20000 --with-contacts 2000
    python benchmarks/export_scale.py --part 2 --rated-customers 700   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from sandbox_process import running_server

from bulk.exporting.walker import PAGE_SIZE
from bulk.sandbox.resources import Caller, Resources
from bulk.sandbox.store import Store
from bulk.schema import CUSTOMER_STATUSES, ONBOARDING_PHASES, ONBOARDING_STATES
from bulk.settings import DEFAULT_CONCURRENCY

WORKSPACE = "exportbench"
KEY = f"pivotal_{WORKSPACE}"
WINDOW_S = 60.0
MEMORY_TARGET_MB = 300
FILES = {"customer": "customers", "contact": "contacts", "onboarding": "onboardings"}
PLANS = ("free", "starter", "growth", "scale", "enterprise")
REGIONS = ("emea", "amer", "apac")


@dataclass(frozen=True)
class Workspace:
    """What was seeded: objects per type, and how many customers have contacts."""

    customers: int
    contacts: int
    onboardings: int
    customers_with_contacts: int
    seed_s: float

    @property
    def counts(self) -> dict[str, int]:
        return {
            "customer": self.customers,
            "contact": self.contacts,
            "onboarding": self.onboardings,
        }

    @property
    def rows(self) -> int:
        return self.customers + self.contacts + self.onboardings

    def describe(self) -> str:
        return (
            f"{self.customers:,} customers, {self.contacts:,} contacts (of "
            f"{self.customers_with_contacts:,} customers), {self.onboardings:,} onboardings"
        )


@dataclass(frozen=True)
class ExportRun:
    """One `bulk export` process as measured from outside, with its JSON report."""

    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    server_cpu_s: float | None
    report: dict[str, Any]

    @property
    def requests(self) -> int:
        return int(self.report["requests"])

    @property
    def rate_limited(self) -> int:
        return int(self.report["rate_limited"])


# -- seeding ---------------------------------------------------------------------------------


def chosen(count: int, of: int) -> set[int]:
    """`count` customer indexes spread evenly over `of`."""
    count = min(count, of)
    return {i * of // count for i in range(count)} if count else set()


def seed(db_path: Path, customers: int, with_contacts: int, onboardings: int) -> Workspace:
    """Write the workspace into a sandbox database, one millisecond apart, oldest first."""
    started = time.monotonic()
    have_contacts = chosen(with_contacts, customers)
    have_onboarding = chosen(onboardings, customers)
    objects = customers + 3 * len(have_contacts) + len(have_onboarding)
    now_ms = int(time.time() * 1000) - objects - 60_000
    caller = Caller(WORKSPACE, livemode=True)
    contacts = 0
    store = Store(db_path)
    resources = Resources(store)
    try:
        with store.transaction():
            for i in range(customers):
                now_ms += 1
                customer = resources.create_customer(caller, customer_body(i), now_ms)
                if i in have_contacts:
                    for n in range(1 + i * 7 % 3):  # 1-3 contacts
                        now_ms += 1
                        resources.create_contact(caller, customer.id, contact_body(i, n), now_ms)
                        contacts += 1
                if i in have_onboarding:
                    now_ms += 1
                    body = {**onboarding_body(i), "customer_id": customer.id}
                    resources.create_onboarding(caller, body, now_ms)
    finally:
        store.close()
    return Workspace(
        customers,
        contacts,
        len(have_onboarding),
        len(have_contacts),
        time.monotonic() - started,
    )


def customer_body(i: int) -> dict[str, Any]:
    return {
        "name": f"Customer {i:06d}, Ltd.",
        "domain": f"c{i:06d}.example.com",
        "status": CUSTOMER_STATUSES[i % len(CUSTOMER_STATUSES)],
        "plan": PLANS[i % len(PLANS)],
        "owner_id": f"usr_{i % 97}",
        "mrr": i * 7 % 10_000,
        "stripe_customer_id": f"cus_{i:08d}",
        "tags": ["beta", "emea"] if i % 4 == 0 else ["partner"] if i % 4 == 1 else [],
        "metadata": {"external_id": f"{i:09d}", "region": REGIONS[i % len(REGIONS)]},
    }


def contact_body(i: int, n: int) -> dict[str, Any]:
    return {
        "name": f"Person {n} of {i:06d}",
        "email": f"person{n}@c{i:06d}.example.com",
        "title": "Head of Operations" if n == 0 else "Engineer",
        "phone": f"+1 555 {i % 10_000:04d}",
        "is_primary": n == 0,
        "labels": ["champion"] if n == 0 else [],
    }


def onboarding_body(i: int) -> dict[str, Any]:
    return {
        "name": f"Onboarding of {i:06d}",
        "phase": ONBOARDING_PHASES[i % len(ONBOARDING_PHASES)],
        "state": ONBOARDING_STATES[i % len(ONBOARDING_STATES)],
        "target_launch_date": f"2025-{1 + i % 12:02d}-15T00:00:00.000Z",
        "notes": "Kick-off done; waiting for SSO details.",
        "csm_id": f"usr_{i % 13}",
    }


# -- requests --------------------------------------------------------------------------------


def pages(rows: int) -> int:
    """GETs a list of `rows` needs at best: full pages, and one even when it is empty
    (`has_more` is exact, so a last page that is exactly full needs no extra request)."""
    return max(1, -(-rows // PAGE_SIZE))


def minimum_requests(workspace: Workspace) -> dict[str, int]:
    return {
        "/me": 1,
        "customer list": pages(workspace.customers),
        "contact lists": workspace.customers,  # every customer's contacts fit on one page
        "onboarding list": pages(workspace.onboardings),
    }


# -- running the export ----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_export(base_url: str, server_pid: int, workdir: Path, concurrency: int | None) -> ExportRun:
    """`bulk export` in a child process: wall time, its own peak RSS and CPU, its report."""
    out_dir, report_path = workdir / "export", workdir / "report.json"
    command = [
        sys.executable,
        "-m",
        "bulk",
        "export",
        str(out_dir),
        "--base-url",
        base_url,
        "--quiet",
        "--report",
        str(report_path),
    ]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    server_before = cpu_seconds(server_pid)
    log_path = workdir / "export.log"
    with log_path.open("wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            command, env={**os.environ, "PIVOTAL_API_KEY": KEY}, stdout=log, stderr=log
        )
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, not all children
        wall_s = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    server_after = cpu_seconds(server_pid)
    if process.returncode != 0:
        sys.stderr.write(log_path.read_text("utf-8", errors="replace"))
        raise SystemExit(f"bulk export exited with {process.returncode}")
    return ExportRun(
        wall_s=wall_s,
        peak_rss_mb=usage.ru_maxrss * 1024 / 1e6,  # KiB on Linux
        cpu_s=usage.ru_utime + usage.ru_stime,
        server_cpu_s=(
            server_after - server_before
            if server_before is not None and server_after is not None
            else None
        ),
        report=json.loads(report_path.read_text("utf-8")),
    )


def check_export(out_dir: Path, run: ExportRun, workspace: Workspace) -> list[str]:
    """Differences between what was seeded and what the export wrote (none, we hope)."""
    problems = []
    manifest = json.loads((out_dir / "manifest.json").read_text("utf-8"))
    for object_name, seeded in workspace.counts.items():
        name = FILES[object_name]
        frame = pl.scan_parquet(out_dir / f"{name}.parquet").select(
            pl.len().alias("rows"), pl.col("id").n_unique().alias("ids")
        )
        rows, ids = frame.collect().row(0)
        found = {
            "file rows": rows,
            "distinct ids": ids,
            "manifest": manifest["counts"][name],
            "report": run.report["counts"][object_name],
        }
        problems += [
            f"{name}: {source} {count:,}, seeded {seeded:,}"
            for source, count in found.items()
            if count != seeded
        ]
    if run.report["warnings"]:
        problems += [f"warning: {warning}" for warning in run.report["warnings"]]
    return problems


def export_and_check(
    db_path: Path, workspace: Workspace, workdir: Path, concurrency: int | None, *limits: str
) -> ExportRun:
    with running_server("--db", str(db_path), *limits) as server:
        run = run_export(server.base_url, server.process.pid, workdir, concurrency)
    problems = check_export(workdir / "export", run, workspace)
    if problems:
        print("The export does not match the workspace:\n  " + "\n  ".join(problems))
        raise SystemExit(1)
    return run


# -- the two parts ---------------------------------------------------------------------------


def unlimited_part(args: argparse.Namespace, workdir: Path) -> None:
    db_path = workdir / "sandbox.sqlite"
    workspace = seed(db_path, args.customers, args.with_contacts, args.onboardings)
    print(f"\n1. Rate limiting off: {workspace.describe()}")
    print(f"   seeded in {workspace.seed_s:.1f} s")
    run = export_and_check(
        db_path, workspace, workdir, args.concurrency, "--rate-limit", "0", "--test-rate-limit", "0"
    )
    minimum = minimum_requests(workspace)
    least = sum(minimum.values())
    rows = [
        ("concurrency", f"{args.concurrency or DEFAULT_CONCURRENCY}", ""),
        ("wall time", f"{run.wall_s:.1f} s", ""),
        ("rows exported", f"{workspace.rows:,}", "= seeded"),
        ("rows/s", f"{workspace.rows / run.wall_s:,.0f}", ""),
        ("requests/s", f"{run.requests / run.wall_s:,.0f}", ""),
        ("peak RSS (export)", f"{run.peak_rss_mb:.0f} MB", f"<= {MEMORY_TARGET_MB} MB"),
        ("CPU (export)", f"{run.cpu_s:.1f} s", f"{run.cpu_s / run.wall_s:.0%} of wall"),
        (
            "CPU (sandbox)",
            "n/a" if run.server_cpu_s is None else f"{run.server_cpu_s:.1f} s",
            "" if run.server_cpu_s is None else f"{run.server_cpu_s / run.wall_s:.0%} of wall",
        ),
        ("requests sent", f"{run.requests:,}", f"minimum {least:,}"),
        ("  over the minimum", f"{run.requests - least:,}", f"{run.requests / least - 1:+.2%}"),
        ("  retries / 429s", f"{run.report['retries']} / {run.rate_limited}", ""),
    ]
    print_table(rows)
    print("   minimum = " + " + ".join(f"{count:,} {what}" for what, count in minimum.items()))


def rated_part(args: argparse.Namespace, workdir: Path) -> None:
    db_path = workdir / "sandbox.sqlite"
    workspace = seed(
        db_path, args.rated_customers, args.rated_with_contacts, args.rated_onboardings
    )
    per_s = args.rate / WINDOW_S
    print(f"\n2. {args.rate} requests per {WINDOW_S:.0f} s sliding window: {workspace.describe()}")
    print(f"   seeded in {workspace.seed_s:.1f} s")
    limit = str(args.rate)
    run = export_and_check(
        db_path,
        workspace,
        workdir,
        args.concurrency,
        "--rate-limit",
        limit,
        "--test-rate-limit",
        limit,
        "--rate-window",
        str(WINDOW_S),
    )
    admitted = run.requests - run.rate_limited
    least = sum(minimum_requests(workspace).values())
    rows = [
        ("requests sent", f"{run.requests:,}", f"minimum {least:,}"),
        ("  answered 429", f"{run.rate_limited}", ""),
        ("wall time", f"{run.wall_s:.1f} s", ""),
    ]
    for label, seconds in (
        (f"{args.rate} at once, then {per_s:g}/s", max(0, admitted - args.rate) / per_s),
        ("sliding-window optimum", window_optimum_s(admitted, args.rate, WINDOW_S)),
        ("steady pacer", admitted / per_s),
    ):
        ratio = f"wall / this {run.wall_s / seconds:.3f}" if seconds else ""
        rows.append((label, f"{seconds:.1f} s", ratio))
    rows.append(("peak RSS (export)", f"{run.peak_rss_mb:.0f} MB", ""))
    print_table(rows)


def window_optimum_s(requests: int, limit: int, window_s: float) -> float:
    """The least time `requests` take against a sliding window of `limit` per `window_s`:
    each lot of `limit` goes the moment the previous lot leaves the window (sending takes no
    time), so the last lot starts after ceil(requests / limit) - 1 windows."""
    return window_s * max(0, -(-requests // limit) - 1)


def print_table(rows: list[tuple[str, str, str]]) -> None:
    for label, value, note in rows:
        print(f"   {label:<22}{value:>14}   {note}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("1", "2", "both"), default="both")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--with-contacts", type=int, default=10_000, help="customers with 1-3")
    parser.add_argument("--onboardings", type=int, default=10_000)
    parser.add_argument("--rated-customers", type=int, default=1_500)
    parser.add_argument("--rated-with-contacts", type=int, default=150)
    parser.add_argument("--rated-onboardings", type=int, default=150)
    parser.add_argument("--rate", type=int, default=600, help="requests per 60 s window")
    parser.add_argument(
        "--concurrency",
        type=int,
        help=f"requests in flight (bulk's default: {DEFAULT_CONCURRENCY})",
    )
    args = parser.parse_args()
    if args.part in ("1", "both"):
        with tempfile.TemporaryDirectory() as temp:
            unlimited_part(args, Path(temp))
    if args.part in ("2", "both"):
        with tempfile.TemporaryDirectory() as temp:
            rated_part(args, Path(temp))


if __name__ == "__main__":
    main()
