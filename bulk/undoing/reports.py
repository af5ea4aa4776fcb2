"""What an undo tells people and machines: per pass deleted, restored, conflicts, failed; the
requests it sent; and, for a dry run, what it would send and how long that takes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bulk.api.estimate import Pace
from bulk.display import format_duration, format_table
from bulk.importing.reports import (
    RequestStats,
    count_requests,
    counts_table,
    rate_phrase,
    requests_line,
    timed,
)

COUNTED = ("deleted", "restored", "gone", "conflicts", "failed", "pending")
PLANNED = ("delete", "restore", "resend")


@dataclass
class UndoPassCounts:
    total: int = 0
    deleted: int = 0
    restored: int = 0
    gone: int = 0
    """Records that somebody else had deleted already: nothing left to do."""
    conflicts: int = 0
    """Changed by somebody else since the import wrote them: left as they are."""
    failed: int = 0
    pending: int = 0
    """Not settled yet (an interrupted undo)."""

    @classmethod
    def from_outcomes(cls, outcomes: dict[str, int]) -> UndoPassCounts:
        counts = cls(total=sum(outcomes.values()))
        for outcome, count in outcomes.items():
            name = "conflicts" if outcome == "conflict" else outcome
            setattr(counts, name, getattr(counts, name) + count)
        return counts


@dataclass
class UndoSummary:
    passes: dict[str, UndoPassCounts]
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    elapsed_s: float = 0.0

    @classmethod
    def from_outcomes(
        cls,
        outcomes: dict[str, dict[str, int]],
        passes: tuple[str, ...],
        stats: RequestStats | None,
        elapsed_s: float,
    ) -> UndoSummary:
        summary = cls(
            {name: UndoPassCounts.from_outcomes(outcomes.get(name, {})) for name in passes}
        )
        count_requests(summary, stats, elapsed_s)
        return summary

    @property
    def has_problems(self) -> bool:
        return any(c.conflicts or c.failed or c.pending for c in self.passes.values())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        return f"{counts_table('undo', self.passes, COUNTED)}\n{requests_line(self)}"


@dataclass
class UndoPlan:
    """What a dry run found: per pass the records to delete and restore, the requests that
    takes (a read and a write per record, a write alone with `--force`) and the time."""

    passes: dict[str, dict[str, int]]
    requests: int
    rate_per_min: int | None
    eta_s: float

    @classmethod
    def from_counts(
        cls,
        counts: dict[str, dict[str, int]],
        passes: tuple[str, ...],
        pace: Pace,
        *,
        force: bool,
        ceiling_per_min: int | None = None,
    ) -> UndoPlan:
        planned = {
            name: {kind: counts.get(name, {}).get(kind, 0) for kind in PLANNED} for name in passes
        }
        per_record = 1 if force else 2
        requests = sum(
            (c["delete"] + c["restore"]) * per_record + c["resend"] for c in planned.values()
        )
        rate, eta_s = timed(requests, pace, ceiling_per_min)
        return cls(planned, requests, rate, eta_s)

    def render(self) -> str:
        rows = [(name, *(c[kind] for kind in PLANNED)) for name, c in self.passes.items()]
        rate = rate_phrase(self.rate_per_min)
        return (
            f"{format_table(('undo', *PLANNED), rows)}\n{self.requests} requests; about "
            f"{format_duration(self.eta_s)} {rate}. Dry run: nothing was sent."
        )
