"""`bulk import` at a million rows: the dry run's time and memory, and how soon a resume starts.

1. `bulk import --dry-run` over 1,000,000 generated customers, in a subprocess: wall time and
   peak RSS (targets: 30 s, 1.5 GB).
2. A checkpoint of 1,000,000 planned rows, all done but the last 10, left as a killed run
   leaves it; `bulk import` resumes it against a sandbox: seconds until its first request and
   its first write (target: first request within 10 s), and until it finishes.

    python benchmarks/import_scale.py
    python benchmarks/import_scale.py --customers 200000
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from generate_customers import write_customers

from bulk.checkpoint import Checkpoint
from bulk.importing.importer import plan_options
from bulk.importing.planning import fingerprint, open_sources, plan_import
from bulk.importing.sources import SourceFile
from bulk.sandbox import Sandbox, SandboxConfig, sandbox_in_thread
from bulk.settings import ConnectionSettings, ImportSettings

LEFT_PENDING = 10
KEY = "pivotal_scale"


def bulk_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "bulk", "import", *arguments, "--quiet"]


def measure_dry_run(source: Path, workdir: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a dry run in a child process."""
    started = time.monotonic()
    subprocess.run(
        bulk_command(
            "--customers",
            str(source),
            "--dry-run",
            "--checkpoint",
            str(workdir / "dry.sqlite"),
            "--sandbox",  # a dry run checks the key with one GET /me
            "--sandbox-db",
            str(workdir / "sandbox.sqlite"),
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, peak_kib / 1024


def killed_run_checkpoint(source: Path, checkpoint_path: Path) -> float:
    """Plan every row into a checkpoint and mark all but the last few done, as a killed run
    leaves it. Returns the planning time."""
    settings = ImportSettings(
        connection=ConnectionSettings(), files={"customers": source}, checkpoint=checkpoint_path
    )
    options = plan_options(settings)
    sources = open_sources([SourceFile("customers", source, "csv")], options)
    checkpoint = Checkpoint(checkpoint_path)
    started = time.monotonic()
    run = checkpoint.begin_run()
    plan_import(checkpoint, run, sources, options)
    checkpoint.mark_planned(run, fingerprint(sources, options))
    planning_s = time.monotonic() - started
    checkpoint.close()
    with sqlite3.connect(checkpoint_path) as db:
        last_line = db.execute("SELECT max(line) FROM rows").fetchone()[0]
        db.execute(
            "UPDATE rows SET state = 'done', action = 'created', synced_payload = payload, "
            "synced_hash = payload_hash, pivotal_id = 'c' || key, display_id = line - 1 "
            "WHERE line <= ?",
            (last_line - LEFT_PENDING,),
        )
    return planning_s


def measure_resume(source: Path, checkpoint_path: Path, sandbox: Sandbox) -> tuple[float, ...]:
    """Seconds from start to the first request, the first write, and the end."""
    started = time.monotonic()
    process = subprocess.Popen(
        bulk_command(
            "--customers",
            str(source),
            "--checkpoint",
            str(checkpoint_path),
            "--base-url",
            sandbox.base_url,
        ),
        env={**os.environ, "PIVOTAL_API_KEY": KEY},
        stdout=subprocess.DEVNULL,
    )
    first_request = first_write = None
    while process.poll() is None:
        now = time.monotonic() - started
        if first_request is None and sandbox.stats.requests:
            first_request = now
        if first_write is None and sandbox.stats.writes:
            first_write = now
        time.sleep(0.005)
    finished = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"resume exited with {process.returncode}")
    return first_request or finished, first_write or finished, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        source = write_customers(args.customers, workdir / "customers.csv")
        size_mb = source.stat().st_size / 1e6
        dry_s, dry_mib = measure_dry_run(source, workdir)
        print(
            f"dry run of {args.customers:,} customers ({size_mb:.0f} MB CSV): {dry_s:.1f} s, "
            f"peak RSS {dry_mib:.0f} MiB (targets 30 s, 1536 MiB)"
        )
        checkpoint_path = workdir / "resume.sqlite"
        planning_s = killed_run_checkpoint(source, checkpoint_path)
        print(f"planning {args.customers:,} rows into a checkpoint: {planning_s:.1f} s")
        config = SandboxConfig(rate_limit=0, test_rate_limit=0)
        with sandbox_in_thread(config) as sandbox:
            first_request, first_write, finished = measure_resume(source, checkpoint_path, sandbox)
        print(
            f"resume with {args.customers - LEFT_PENDING:,} rows done: first request after "
            f"{first_request:.2f} s, first write after {first_write:.2f} s, finished after "
            f"{finished:.2f} s (target: first request within 10 s)"
        )


if __name__ == "__main__":
    main()
