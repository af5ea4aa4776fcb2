"""What the checkpoint costs a row sent: its in-flight mark, a share of a commit, its done mark.

The writes an import's sending phase makes, without the network: rows planned into a fresh
checkpoint, then claimed 16 at a time (what 8 workers claim), marked in flight, committed, and
marked done with a random-looking Pivotal id. Printed per row: CPU and wall time (the wall time
beyond the CPU is the event loop waiting on the file). Variants, alternated for `--rounds`:

- `as-is`: the checkpoint as `bulk` opens it;
- `pivotal-index`: with the (pass, pivotal_id) index that migration 008 dropped;
- `wal-1000`: with SQLite's default WAL checkpoint interval instead of `WAL_CHECKPOINT_PAGES`.

    python benchmarks/checkpoint_writes.py
    python benchmarks/checkpoint_writes.py --rows 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bulk.api.client import encode_body
from bulk.checkpoint import Checkpoint, Run, planned_row
from bulk.schema import CUSTOMER, canonical_json

CLAIMED = 16
VARIANTS = ("as-is", "pivotal-index", "wal-1000")


def planned_customers(checkpoint: Checkpoint, run: Run, count: int) -> None:
    """`count` customers as planning stores them, payload and source cells included."""
    rows: list[dict[str, Any]] = []
    for number in range(count):
        key = f"C{number:06d}"
        cells = {
            "external_id": key,
            "name": f"Company {number}",
            "domain": f"c{number}.example.com",
            "status": "active",
            "plan": "pro",
            "mrr": "1234",
            "tags": "emea;smb",
        }
        payload = canonical_json(
            {
                "name": cells["name"],
                "domain": cells["domain"],
                "status": "active",
                "plan": "pro",
                "mrr": 1234,
                "tags": ["emea", "smb"],
                "metadata": {"external_id": key},
            }
        )
        rows.append(
            planned_row(
                run,
                CUSTOMER.collection,
                key,
                number + 2,
                "customers.csv",
                payload,
                canonical_json(cells),
            )
        )
    with checkpoint.transaction():
        checkpoint.upsert_planned(rows)


def sending_writes(variant: str, count: int) -> tuple[float, float]:
    """(CPU, wall) seconds a row for the sending phase's writes of `count` rows."""
    with tempfile.TemporaryDirectory() as temp:
        checkpoint = Checkpoint(Path(temp) / "bench.sqlite")
        db = checkpoint.database
        if variant == "pivotal-index":
            db.execute("CREATE INDEX rows_by_pivotal_id ON rows (pass, pivotal_id)")
        if variant == "wal-1000":
            db.execute("PRAGMA wal_autocheckpoint = 1000")
        run = checkpoint.begin_run()
        planned_customers(checkpoint, run, count)
        rows = list(checkpoint.rows_to_send(CUSTOMER.collection, run))
        ids = [f"cus_{random.getrandbits(80):020x}" for _ in rows]
        cpu, wall = time.process_time(), time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        for start in range(0, count, CLAIMED):
            claimed = rows[start : start + CLAIMED]
            for row in claimed:
                body = encode_body(row.payload)
                checkpoint.mark_in_flight(row, "POST", "/customers", body, row.payload)
            db.execute("COMMIT")  # what GroupCommit.durable() does once for the batch
            db.execute("BEGIN IMMEDIATE")
            for offset, row in enumerate(claimed):
                pivotal_id = ids[start + offset]
                checkpoint.mark_done(
                    row, "created", pivotal_id, start + offset, 1, row.payload, row.payload_hash
                )
        db.execute("COMMIT")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        checkpoint.close()
    return cpu / count, wall / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float]]] = {variant: [] for variant in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            figures[variant].append(sending_writes(variant, args.rows))
    print(f"{args.rows} rows sent, {CLAIMED} claimed a commit, medians of {args.rounds} rounds:")
    for variant, runs in figures.items():
        cpu = statistics.median(cpu for cpu, _ in runs) * 1e6
        wall = statistics.median(wall for _, wall in runs) * 1e6
        print(f"  {variant:14s} {cpu:5.1f} µs CPU, {wall:5.1f} µs wall a row")


if __name__ == "__main__":
    main()
