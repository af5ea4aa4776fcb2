"""What an import tells people and machines: the summary, the JSON report, the errors and
results files — all computed from the checkpoint, so they always agree with it."""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bulk.api.estimate import Pace, estimate_seconds
from bulk.api.ratelimit import WINDOW_MARGIN_S
from bulk.checkpoint import Checkpoint, ProblemRow, Run
from bulk.display import format_duration, format_table
from bulk.importing.errors_input import TOOL_COLUMNS, TOOL_PREFIX
from bulk.outputs import output_error

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


def counts_table(label: str, passes: Mapping[str, object], columns: Sequence[str]) -> str:
    """Per pass its `total` and its `columns` (attributes of each pass's counts), as the
    import's and the undo's summaries show them."""
    shown = ("total", *columns)
    rows = [
        (name, *(getattr(counts, column) for column in shown)) for name, counts in passes.items()
    ]
    return format_table((label, *shown), rows)


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
        text = f"{counts_table('pass', self.passes, COUNTED)}\n{requests_line(self)}"
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
    invalid_preview: list[str] = field(default_factory=list)
    """The first invalid rows, one line each (`invalid_preview`)."""

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
        text = (
            f"{format_table(('pass', *PLANNED), rows)}\n{self.requests} write requests; about "
            f"{format_duration(self.eta_s)} {rate}. Dry run: nothing was sent."
        )
        return "\n".join([text, *self.invalid_preview])


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


ERRORS_FILE_ENCODING = "utf-8-sig"
"""UTF-8 with a BOM: the errors file is made to be fixed in a spreadsheet, and Excel reads a
CSV without one in the machine's legacy code page (an accent would come back mangled); `bulk`
reads it either way."""


def write_errors_file(checkpoint: Checkpoint, path: Path) -> Path | None:
    """Every invalid, failed or skipped row the checkpoint holds, from every run, with its
    original cells and why; None (and no file) when there is none."""
    return write_problem_file(path, checkpoint.problem_rows)


def write_problem_file(path: Path, problems: Callable[[], Iterable[ProblemRow]]) -> Path | None:
    """The rows `problems()` yields (it is called twice: columns, then rows; in source order)
    with their original cells and why; no file (and None) when there is none.

    The columns are the rows' own — each pass's in the order its files had them, the passes in
    pass order — then `TOOL_COLUMNS`; a source's own `_` columns are left out, so the file is
    valid input as it is (`bulk.importing.errors_input`).
    """
    columns: dict[str, None] = {}
    count = 0
    for problem in problems():
        columns.update(dict.fromkeys(name for name in problem.cells if not _is_tool(name)))
        count += 1
    if count == 0:
        with _told("errors file", path):
            path.unlink(missing_ok=True)
        return None
    with _told("errors file", path), _opened(path, ERRORS_FILE_ENCODING) as out:
        writer = csv.writer(out)
        writer.writerow([*columns, *TOOL_COLUMNS])
        for problem in problems():
            writer.writerow(
                [
                    *(problem.cells.get(column) for column in columns),
                    problem.pass_name,
                    problem.source,
                    problem.line,
                    problem.code,
                    problem.message,
                ]
            )
    return path


RESULT_COLUMNS = ("_pass", "_file", "_line", "external_id", "action", "id", "display_id")


def write_results_file(checkpoint: Checkpoint, path: Path) -> Path:
    """One line per row the checkpoint knows, from every run, by pass, file and line: its
    latest action and its Pivotal ids (kept whatever that action, while it exists there)."""
    with _told("results file", path), _opened(path) as out:
        writer = csv.writer(out)
        writer.writerow(RESULT_COLUMNS)
        writer.writerows(checkpoint.result_rows())
    return path


def errors_file_notes(errors_file: Path | None, fed_back: Sequence[Path]) -> list[str]:
    """What the summary says about the errors file: where the problem rows are, and that a fix
    made there is not made in the source (whose next run would send the old cells again)."""
    lines = []
    if errors_file is not None:
        lines.append(f"Problem rows: {errors_file} (fix them there and import that file again)")
    if fed_back:
        names = ", ".join(str(path) for path in fed_back)
        lines.append(
            f"Read from the errors file {names}: carry the fixes into your source too, or its "
            "next run reverts them."
        )
    elif errors_file is not None:
        lines.append("Carry the fixes into your source too, or its next run reverts them.")
    return lines


SHOWN_INVALID = 10
"""Invalid rows a dry run lists (it writes no errors file)."""


def invalid_preview(checkpoint: Checkpoint, run: Run, errors_file: Path) -> list[str]:
    """The first invalid rows of a dry run's plan, one line each, for the user to see without
    an errors file (a dry run leaves that file as the last real run wrote it)."""
    total = sum(checkpoint.invalid_counts(run).values())
    if not total:
        return []
    lines = [f"Invalid rows (a real run writes them to {errors_file}):"]
    invalid = (problem for problem in checkpoint.problem_rows(run) if problem.state == "invalid")
    for problem in itertools.islice(invalid, SHOWN_INVALID):
        lines.append(f"  {problem.source} line {problem.line}: {problem.message}")
    if total > SHOWN_INVALID:
        lines.append(f"  ... and {total - SHOWN_INVALID} more")
    return lines


def _is_tool(column: str) -> bool:
    return column.startswith(TOOL_PREFIX)


@contextmanager
def _told(label: str, path: Path) -> Iterator[None]:
    """An OS error writing `path` (full disk, read-only folder) as one line with a remedy."""
    try:
        yield
    except OSError as error:
        raise output_error(label, path, error) from error


@contextmanager
def _opened(path: Path, encoding: str = "utf-8") -> Iterator[Any]:
    """`path` for writing, replaced whole once written: a run killed midway leaves the file as
    it was, never half of it (the errors file may be the next run's source)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", newline="", encoding=encoding) as out:
            yield out
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


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
