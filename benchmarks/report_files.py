"""The errors and results files of a large checkpoint: time and memory to write them.

Both files are written from the whole checkpoint at the end of every run, so their cost grows
with everything the checkpoint ever met, not with the run. This seeds a checkpoint with
`--rows` customer rows (done, with ids) of which `--problems` are failed, plus as many invalid
rows, through the checkpoint's own methods, then times `write_errors_file` and
`write_results_file` and prints the peak RSS of this process (ru_maxrss) before and after.

    python benchmarks/report_files.py
    python benchmarks/report_files.py --rows 1000000 --problems 50000
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from bulk.checkpoint import Checkpoint, InvalidRow, planned_row
from bulk.importing.reports import write_errors_file, write_results_file
from bulk.schema import now_timestamp

BATCH = 10_000


def seed(checkpoint: Checkpoint, rows: int, problems: int) -> None:
    run = checkpoint.begin_run()
    now = now_timestamp()
    for start in range(0, rows, BATCH):
        batch = []
        for n in range(start, min(start + BATCH, rows)):
            cells = {"external_id": f"K{n}", "name": f"Customer {n}", "plan": "gold"}
            batch.append(
                planned_row(
                    run,
                    "customers",
                    f"K{n}",
                    n + 2,
                    "customers.csv",
                    "{}",
                    json.dumps(cells),
                    payload_hash="h",
                    state="done",
                    action="created",
                    updated_at=now,
                )
            )
        with checkpoint.transaction():
            checkpoint.upsert_planned(batch)
    with checkpoint.transaction():
        checkpoint._db.execute(  # benchmark only: give every row an id, fail the first ones
            "UPDATE rows SET pivotal_id = 'id' || line, display_id = line, "
            "state = CASE WHEN line < ? THEN 'failed' ELSE state END, "
            "error_code = 'x', error_message = 'refused'",
            (problems + 2,),
        )
        invalid = [
            InvalidRow(
                "customers", rows + n + 2, "customers.csv", None, "status", "invalid_enum_value",
                "status 'bogus' is not one of active, churned",
                json.dumps({"external_id": None, "name": f"Bad {n}", "plan": "gold"}),
            )
            for n in range(problems)
        ]  # fmt: skip
        checkpoint.record_invalid(run, invalid)
    checkpoint.finish_run(run)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--problems", type=int, default=10_000)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "import.sqlite"
        checkpoint = Checkpoint(path)
        seed(checkpoint, arguments.rows, arguments.problems)
        before = peak_mb()
        print(f"checkpoint: {arguments.rows} rows, {arguments.problems} failed, "
              f"{arguments.problems} invalid; peak RSS after seeding {before:.0f} MB")  # fmt: skip
        for label, write in (
            ("errors file", lambda: write_errors_file(checkpoint, Path(folder) / "e.csv")),
            ("results file", lambda: write_results_file(checkpoint, Path(folder) / "r.csv")),
        ):
            started = time.perf_counter()
            written = write()
            elapsed = time.perf_counter() - started
            size = written.stat().st_size / 1e6 if written else 0.0
            print(f"{label}: {elapsed:.2f} s, {size:.1f} MB, peak RSS {peak_mb():.0f} MB")
        checkpoint.close()


if __name__ == "__main__":
    main()
