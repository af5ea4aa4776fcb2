"""What mapping costs per row: planning the same customers read straight, through plain `--map`
renames, and through a template and a `values` table (the CRM case).

    python benchmarks/mapping_overhead.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bulk.importing.mapping import SourceMapping, load_mapping
from bulk.importing.rows import RowPlanner
from bulk.importing.sources import SourceRecord

STATUSES = ("active", "onboarding", "onboarding", "churned")
STAGES = ("Customer", "Lead", "Opportunity", "Churned")
"""What the values table turns into STATUSES (`Churned` by the tolerant enum parser)."""


def records(rows: int, columns: Sequence[str], stages: Sequence[str]) -> list[SourceRecord]:
    external_id, first, last, stage, domain = columns
    return [
        SourceRecord(
            n + 2,
            {
                external_id: f"{n:07d}",
                first: f"Company {n}",
                last: "GmbH",
                stage: stages[n % len(stages)],
                domain: f"c{n}.example",
            },
        )
        for n in range(rows)
    ]


def seconds_to_plan(
    columns: Sequence[str], stages: Sequence[str], mapping: SourceMapping, rows: int
) -> float:
    """The best of three passes over the same records (the machine is shared)."""
    planner = RowPlanner("customers", list(columns), mapping)
    batch = records(rows, columns, stages)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for record in batch:
            planner.plan(record)
        best = min(best, time.perf_counter() - started)
    return best


def crm_mapping() -> SourceMapping:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "crm.toml"
        path.write_text(
            '[customers]\nexternal_id = "Record ID"\nname = "{First} {Last}"\n'
            'domain = "Domain"\nstatus = { column = "Lifecycle Stage", values = { '
            'Customer = "active", Lead = "onboarding", Opportunity = "onboarding" } }\n',
            encoding="utf-8",
        )
        return load_mapping((), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    rows = parser.parse_args().rows
    hubspot = ("Record ID", "First", "Last", "Lifecycle Stage", "Domain")
    cases = {
        "no map (the fields' own columns)": (
            ("external_id", "name", "plan", "status", "domain"),
            STATUSES,
            SourceMapping(),
        ),
        "plain --map renames": (
            hubspot,
            STATUSES,
            load_mapping(
                [
                    "external_id=Record ID",
                    "name=First",
                    "plan=Last",
                    "status=Lifecycle Stage",
                    "domain=Domain",
                ]
            ),
        ),
        "template + values table": (hubspot, STAGES, crm_mapping()),
    }
    for label, (columns, stages, mapping) in cases.items():
        seconds = seconds_to_plan(columns, stages, mapping, rows)
        print(f"{label:36} {seconds:6.2f} s  {seconds / rows * 1e6:5.2f} µs/row")


if __name__ == "__main__":
    main()
