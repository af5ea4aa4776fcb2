"""What an import tells people and machines: the summary, the JSON report, the errors and
results files — all computed from the checkpoint, so they always agree with it."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bulk.checkpoint import Checkpoint, ProblemRow, Run
from bulk.display import format_duration, format_table
from bulk.schema import LIVE_KEY_RATE_LIMIT
from bulk.settings import pass_order

COUNTED = ("created", "updated", "unchanged", "adopted", "failed", "skipped", "invalid")
PLANNED = ("create", "update", "resend", "unchanged", "skipped", "invalid")


class RequestStats(Protocol):
    requests: int
    retries: int
    rate_limited: int


@dataclass
class PassCounts:
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    adopted: int = 0
    failed: int = 0
    skipped: int = 0
    invalid: int = 0
    pending: int = 0
    """Rows not settled yet (an interrupted run)."""


@dataclass
class ImportSummary:
    passes: dict[str, PassCounts]
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    elapsed_s: float = 0.0

    @classmethod
    def from_counts(
        cls,
        counts: dict[str, dict[str, int]],
        passes: tuple[str, ...],
        stats: RequestStats | None,
        elapsed_s: float,
    ) -> ImportSummary:
        summary = cls({name: _pass_counts(counts.get(name, {})) for name in passes})
        if stats is not None:
            summary.requests, summary.retries = stats.requests, stats.retries
            summary.rate_limited = stats.rate_limited
        summary.elapsed_s = round(elapsed_s, 3)
        return summary

    @property
    def has_problems(self) -> bool:
        return any(c.failed or c.skipped or c.invalid or c.pending for c in self.passes.values())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        rows = [
            (name, *(getattr(c, column) for column in ("total", *COUNTED)))
            for name, c in self.passes.items()
        ]
        table = format_table(("pass", "total", *COUNTED), rows)
        return (
            f"{table}\nrequests {self.requests}, retries {self.retries}, "
            f"rate-limited {self.rate_limited}, elapsed {self.elapsed_s:.1f} s"
        )


@dataclass
class PlanSummary:
    """What a dry run found: per pass the planned actions, and the requests and time it needs."""

    passes: dict[str, dict[str, int]]
    requests: int
    rate_per_min: int
    eta_s: float
    rate_is_default: bool = field(default=False)

    @classmethod
    def from_counts(cls, counts: dict[str, dict[str, int]], rate_limit: int | None) -> PlanSummary:
        passes = {
            name: {kind: counts.get(name, {}).get(kind, 0) for kind in PLANNED} for name in counts
        }
        requests = sum(c["create"] + c["update"] + c["resend"] for c in passes.values())
        rate = rate_limit or LIVE_KEY_RATE_LIMIT
        # a sliding window admits a full window's worth at once, then `rate` per minute
        eta_s = max(requests - rate, 0) * 60 / rate
        return cls(passes, requests, rate, eta_s, rate_limit is None)

    def render(self) -> str:
        rows = [(name, *(c[kind] for kind in PLANNED)) for name, c in self.passes.items()]
        note = " (the API's default; pass --rate-limit to change)" if self.rate_is_default else ""
        return (
            f"{format_table(('pass', *PLANNED), rows)}\n{self.requests} write requests; about "
            f"{format_duration(self.eta_s)} at {self.rate_per_min} requests/min{note}. "
            "Dry run: nothing was sent."
        )


def write_errors_file(checkpoint: Checkpoint, run: Run, path: Path) -> Path | None:
    """Every invalid, failed or skipped row with its original columns and why; None if none."""
    columns: dict[str, None] = {}
    count = 0
    for problem in checkpoint.problem_rows(run):
        columns.update(dict.fromkeys(problem.cells))
        count += 1
    if count == 0:
        path.unlink(missing_ok=True)
        return None
    header = ["_pass", "_line", *columns, "_state", "_error_code", "_error_message"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for problem in sorted(checkpoint.problem_rows(run), key=_source_order):
            writer.writerow(
                [
                    problem.pass_name,
                    problem.line,
                    *(problem.cells.get(column) for column in columns),
                    problem.state,
                    problem.code,
                    problem.message,
                ]
            )
    return path


def write_results_file(checkpoint: Checkpoint, run: Run, path: Path) -> Path:
    """One line per source row, in source order: what happened and the Pivotal ids."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["pass", "_line", "external_id", "action", "id", "display_id"])
        for result in checkpoint.result_rows(run):
            writer.writerow(
                [
                    result.pass_name,
                    result.line,
                    result.key,
                    result.action,
                    result.pivotal_id,
                    result.display_id,
                ]
            )
    return path


def _source_order(problem: ProblemRow) -> tuple[int, int]:
    return pass_order(problem.pass_name), problem.line


def write_report(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _pass_counts(counts: dict[str, int]) -> PassCounts:
    result = PassCounts(total=sum(counts.values()))
    for label, count in counts.items():
        if label in ("pending", "in_flight"):
            result.pending += count
        elif hasattr(result, label):
            setattr(result, label, getattr(result, label) + count)
    return result
