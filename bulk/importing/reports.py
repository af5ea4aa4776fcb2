"""What an import tells people and machines: the summary, the JSON report, the errors and
results files — all computed from the checkpoint, so they always agree with it."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from bulk.api.estimate import Pace, estimate_seconds
from bulk.api.ratelimit import WINDOW_MARGIN_S
from bulk.checkpoint import Checkpoint, ProblemRow, Run
from bulk.display import format_duration, format_table
from bulk.outputs import output_error
from bulk.settings import pass_order

COUNTED = ("created", "updated", "unchanged", "adopted", "failed", "skipped", "invalid")
PLANNED = ("create", "update", "resend", "unchanged", "skipped", "invalid")


class RequestStats(Protocol):
    requests: int
    retries: int
    rate_limited: int


class RequestTotals(Protocol):
    """A summary's last line: what the run sent and how long it took."""

    requests: int
    retries: int
    rate_limited: int
    elapsed_s: float


def count_requests(totals: RequestTotals, stats: RequestStats | None, elapsed_s: float) -> None:
    if stats is not None:
        totals.requests, totals.retries = stats.requests, stats.retries
        totals.rate_limited = stats.rate_limited
    totals.elapsed_s = round(elapsed_s, 3)


def requests_line(totals: RequestTotals) -> str:
    return (
        f"requests {totals.requests}, retries {totals.retries}, "
        f"rate-limited {totals.rate_limited}, elapsed {totals.elapsed_s:.1f} s"
    )


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
    not_in_source: int = 0
    """Rows the checkpoint knows that this run's source no longer has: left as they are in
    Pivotal, and not part of `total` (SPEC: the totals are the source's)."""


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
        not_in_source: dict[str, int] | None = None,
    ) -> ImportSummary:
        summary = cls({name: _pass_counts(counts.get(name, {})) for name in passes})
        for name, count in (not_in_source or {}).items():
            if name in summary.passes:
                summary.passes[name].not_in_source = count
        count_requests(summary, stats, elapsed_s)
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
        text = f"{format_table(('pass', 'total', *COUNTED), rows)}\n{requests_line(self)}"
        gone = sum(c.not_in_source for c in self.passes.values())
        if gone:
            text += f"\nnot in source: {gone}, left as they are in Pivotal"
        return text


@dataclass
class PlanSummary:
    """What a dry run found: per pass the planned actions, and the requests and time it needs."""

    passes: dict[str, dict[str, int]]
    requests: int
    rate_per_min: int | None
    """The key's real limit as `GET /me` showed it (or `--rate-limit`, if lower); None: the
    server sets no limit."""
    eta_s: float

    @classmethod
    def from_counts(
        cls, counts: dict[str, dict[str, int]], pace: Pace, ceiling_per_min: int | None = None
    ) -> PlanSummary:
        """The plan, timed by the governor's own model (`estimate_seconds`) at `pace`.

        The real run sends one more request than the writes, its own `GET /me`. Time spent
        planning is not included: the estimate starts when the first request leaves.
        """
        passes = {
            name: {kind: counts.get(name, {}).get(kind, 0) for kind in PLANNED} for name in counts
        }
        requests = sum(c["create"] + c["update"] + c["resend"] for c in passes.values())
        rate, eta_s = timed(requests, pace, ceiling_per_min)
        return cls(passes, requests, rate, eta_s)

    def render(self) -> str:
        rows = [(name, *(c[kind] for kind in PLANNED)) for name, c in self.passes.items()]
        rate = rate_phrase(self.rate_per_min)
        return (
            f"{format_table(('pass', *PLANNED), rows)}\n{self.requests} write requests; about "
            f"{format_duration(self.eta_s)} {rate}. Dry run: nothing was sent."
        )


def timed(requests: int, pace: Pace, ceiling_per_min: int | None) -> tuple[int | None, float]:
    """(the rate a run keeps to, its estimated seconds) for `requests` writes plus the run's
    own `GET /me`, by the governor's model at `pace` and under the user's `--rate-limit`."""
    eta_s = estimate_seconds(requests + 1, pace)
    rate = per_minute(pace)
    if ceiling_per_min is not None and (rate is None or ceiling_per_min < rate):
        rate = ceiling_per_min  # the user's ceiling spaces requests 60/N s apart
        eta_s = max(eta_s, requests * 60 / ceiling_per_min + pace.latency_s)
    return rate, eta_s


def rate_phrase(rate_per_min: int | None) -> str:
    """`at 600 requests/min`, as a dry run's estimate ends."""
    if rate_per_min is None:
        return "(the server sets no rate limit)"
    return f"at {rate_per_min} requests/min"


def per_minute(pace: Pace) -> int | None:
    """The key's limit per minute: `limit` per window, scaled.

    The governor's window is measured from `X-RateLimit-Reset` (whole seconds, so up to 1 s
    long) plus a safety margin; whole seconds of it are the server's window.
    """
    if pace.limit is None:
        return None
    window_s = max(math.floor(pace.window_s - WINDOW_MARGIN_S), 1)
    return round(pace.limit * 60 / window_s)


def write_errors_file(checkpoint: Checkpoint, run: Run, path: Path) -> Path | None:
    """Every invalid, failed or skipped row with its original columns and why; None if none."""
    return write_problem_file(path, lambda: checkpoint.problem_rows(run))


def write_problem_file(path: Path, problems: Callable[[], Iterable[ProblemRow]]) -> Path | None:
    """The rows `problems()` yields (it is called twice: columns, then rows) with their
    original columns and why, in source order; no file (and None) when there is none."""
    columns: dict[str, None] = {}
    count = 0
    for problem in problems():
        columns.update(dict.fromkeys(problem.cells))
        count += 1
    if count == 0:
        with _told("errors file", path):
            path.unlink(missing_ok=True)
        return None
    header = ["_pass", "_line", *columns, "_state", "_error_code", "_error_message"]
    with _told("errors file", path), _opened(path) as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for problem in sorted(problems(), key=_source_order):
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
    with _told("results file", path), _opened(path) as out:
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


@contextmanager
def _told(label: str, path: Path) -> Iterator[None]:
    """An OS error writing `path` (full disk, read-only folder) as one line with a remedy."""
    try:
        yield
    except OSError as error:
        raise output_error(label, path, error) from error


@contextmanager
def _opened(path: Path) -> Iterator[Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        yield out


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
