"""Walking an API list completely, although its cursor skips rows.

The API orders lists by `created_at` descending and its cursor returns rows *strictly older*
than the boundary row's timestamp, so rows sharing that timestamp which did not fit on the page
are skipped. The walker asks for `boundary + 1 ms` instead: the next page then starts with the
whole tie group again (de-duplicated by `id`) followed by older rows. A page made entirely of
one timestamp cannot be paged through at all; the walker then splits that group with the list's
filters and warns, with a count, about any group a filter still cannot page through.

The walk's position is a small `WalkState` that the exporter saves in its checkpoint, so a
killed walk resumes at the page after the last one written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from bulk.schema import CUSTOMER_STATUSES, format_timestamp, parse_timestamp

PAGE_SIZE = 100

Page = Mapping[str, Any]
FetchPage = Callable[[Mapping[str, str]], Awaitable[Page]]
"""GET the list with these query parameters; returns the list envelope."""


@dataclass
class WalkState:
    """Where a walk stands: the cursor to ask next and the ids already seen at its timestamp."""

    cursor: str | None = None
    seen_at_cursor: list[str] = field(default_factory=list)
    finished: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "seen_at_cursor": self.seen_at_cursor,
            "finished": self.finished,
        }

    def copy(self) -> WalkState:
        return WalkState(self.cursor, list(self.seen_at_cursor), self.finished)

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> WalkState:
        if not document:
            return cls()
        return cls(
            document.get("cursor"),
            list(document.get("seen_at_cursor", [])),
            bool(document.get("finished")),
        )


@dataclass(frozen=True)
class Split:
    """How to split a tie group: a filter parameter and the values it can take."""

    parameter: str
    values: Sequence[str]


CUSTOMER_SPLITS = (Split("status", CUSTOMER_STATUSES),)
"""How a page of customers that all share one `created_at` is split to reach every one."""


@dataclass
class WalkWarnings:
    """Rows the API's cursor could not reach, for the user to hear about."""

    messages: list[str] = field(default_factory=list)


def one_ms_later(timestamp: str) -> str:
    return format_timestamp(parse_timestamp(timestamp, assume_utc=True) + timedelta(milliseconds=1))


async def walk(
    fetch: FetchPage,
    state: WalkState,
    *,
    splits: Sequence[Split] = (),
    warnings: WalkWarnings | None = None,
    label: str = "rows",
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield each page's new rows; `state` is advanced *before* each yield, so a caller that
    saves it after handling a page resumes right after that page."""
    warnings = warnings if warnings is not None else WalkWarnings()
    while not state.finished:
        page = await fetch(_query(state.cursor, page_size))
        rows = [row for row in page.get("data", []) if row.get("id") not in state.seen_at_cursor]
        everything = list(page.get("data", []))
        if not page.get("has_more") or not everything:
            state.finished = True
            yield rows
            return
        boundary = str(everything[-1].get("created_at"))
        if all(row.get("created_at") == boundary for row in everything):
            # asking at boundary + 1 ms would return this same page: split the group instead
            seen = {str(row.get("id")) for row in everything} | set(state.seen_at_cursor)
            group = _TieGroup(fetch, boundary, seen, warnings, label, page_size)
            rows += await group.unseen({}, splits, everything)
            state.cursor, state.seen_at_cursor = boundary, []  # strictly older from here
        else:
            state.cursor = one_ms_later(boundary)
            state.seen_at_cursor = [
                str(row.get("id")) for row in everything if row.get("created_at") == boundary
            ]
        yield rows


class _Narrowed(NamedTuple):
    rows: list[dict[str, Any]]
    """The rows at exactly the boundary that match the filters."""
    complete: bool
    """Whether that is all of them: the page reached an older row or is the list's last."""


@dataclass(frozen=True)
class _TieGroup:
    """A group of rows sharing `boundary` that fills a page: what reading it needs."""

    fetch: FetchPage
    boundary: str
    seen: set[str]
    """Ids already read; grows as the group is read."""
    warnings: WalkWarnings
    label: str
    page_size: int

    async def unseen(
        self,
        filters: Mapping[str, str],
        splits: Sequence[Split],
        sample: Sequence[Mapping[str, Any]],
    ) -> list[dict[str, Any]]:
        """Rows of the group matching `filters` that `seen` lacks, read filter value by filter
        value; a group a filter value still fills a page with is split by the next filter."""
        if not splits:
            self._warn(filters, len(sample))
            return []
        found: list[dict[str, Any]] = []
        for value in _values(splits[0], sample):
            narrowed = {**filters, splits[0].parameter: value}
            group = await self._read(narrowed)
            found += [row for row in group.rows if str(row.get("id")) not in self.seen]
            self.seen.update(str(row.get("id")) for row in group.rows)
            if not group.complete:
                found += await self.unseen(narrowed, splits[1:], group.rows)
        return found

    async def _read(self, filters: Mapping[str, str]) -> _Narrowed:
        page = await self.fetch({**filters, **_query(one_ms_later(self.boundary), self.page_size)})
        data = list(page.get("data", []))
        group = [row for row in data if row.get("created_at") == self.boundary]
        return _Narrowed(group, not page.get("has_more") or len(group) < len(data))

    def _warn(self, filters: Mapping[str, str], read: int) -> None:
        where = " with " + ", ".join(f"{k}={v}" for k, v in filters.items()) if filters else ""
        self.warnings.messages.append(
            f"{read} or more {self.label}{where} share created_at {self.boundary}; the API "
            f"cannot page through them: {read} were read, any more are missing"
        )


def _values(split: Split, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The documented values, plus any undocumented ones the rows show (the API may add some)."""
    values = list(split.values)
    for row in rows:
        value = row.get(split.parameter)
        if isinstance(value, str) and value not in values:
            values.append(value)
    return values


def _query(cursor: str | None, page_size: int) -> dict[str, str]:
    query = {"limit": str(page_size)}
    if cursor is not None:
        query["cursor"] = cursor
    return query
