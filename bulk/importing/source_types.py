"""What every source reader shares: the file it reads, the records it yields, how it batches.

A reader yields records of text cells (a string or None) in batches. Batches are sized by the
memory their records take, not by a fixed count of rows: a row of 1,000 columns costs as much
as a hundred narrow ones once its cells are Python strings in a dictionary (measured: a 200 MB
CSV of 1,000 columns peaked at 3.69 GB in batches of 20,000 rows, a narrow one at 410 MB).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import polars as pl

from bulk.errors import InputError

DEFAULT_BATCH_SIZE = 50_000
BATCH_BYTES = 48 * 1024 * 1024
"""What the records of one batch may take in memory, about (see `rows_per_batch`)."""
CELL_BYTES = 160
"""A cell's cost as a record cell beyond its text: the str object, its dictionary slot, and
its share of the copies the planner makes (the cells' JSON, the payload)."""
TEXT_COPIES = 4
"""How many copies of a row's text exist while its batch is planned."""


@dataclass(frozen=True)
class SourceFile:
    """One input file (or one sheet of a workbook) and the pass that reads it."""

    pass_name: str
    path: Path
    format: str
    """"csv", "parquet", "spreadsheet" or "errors" (one pass's rows of an errors file)."""
    sheet: str | None = None
    """Spreadsheets: the sheet to read, as the user named it (any letter case); None: the
    sheet named for the pass, else the first one."""

    @property
    def label(self) -> str:
        """The file as messages and reports name it: `book.xlsx#contacts` for a sheet."""
        return f"{self.path.name}#{self.sheet}" if self.sheet else self.path.name

    @property
    def shown_path(self) -> Path:
        """`path`, with the sheet in its name, for messages that name the file."""
        return self.path.with_name(self.label)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One data row: the line it starts on and its cells under the file's own column names."""

    line: int
    """CSV: the physical line the record starts on (the header is line 1). Parquet: the 1-based
    row number + 1, so the first data row is 2 in both formats. Spreadsheets: the row number
    the spreadsheet shows."""
    cells: dict[str, str | None]


def rows_per_batch(columns: int, bytes_per_row: float, limit: int) -> int:
    """How many rows fit in `BATCH_BYTES` once read (at most `limit`, at least one)."""
    cost = columns * CELL_BYTES + bytes_per_row * TEXT_COPIES
    return max(1, min(limit, int(BATCH_BYTES // max(cost, 1.0))))


class Source(ABC):
    """An opened source file: its header, its size, and its records in batches.

    Close it (or use it as a context manager) to release what it holds (a transcoded CSV's
    temporary file, a sheet's cells); a forgotten one is released when the object is collected.
    """

    def __init__(self, source: SourceFile, columns: tuple[str, ...]) -> None:
        self.source = source
        self.columns = columns
        self.list_columns: dict[str, str] = {}
        """Columns whose cells are lists (typed sources), and their type: only `tags` and
        `labels` may hold lists, which the planner checks once it knows the mapping."""
        self.warnings: list[str] = []
        """What the user should hear about the file although it can be read (one line each)."""
        self._row_count: int | None = None

    @property
    def path(self) -> Path:
        return self.source.path

    @property
    def shown_path(self) -> Path:
        return self.source.shown_path

    def row_count(self) -> int:
        """How many records `batches` yields (a full, fast scan; cached)."""
        if self._row_count is None:
            self._row_count = self._count_rows()
        return self._row_count

    @abstractmethod
    def _count_rows(self) -> int: ...

    @abstractmethod
    def batches(self, size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[SourceRecord]]:
        """The records in file order, at most `size` at a time, fewer for wide or long rows.

        Records whose cells are all empty (blank lines, `,,,`, blank sheet rows) are skipped.
        """

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Release what the source holds."""

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def non_empty(text: pl.Expr) -> pl.Expr:
    """Empty text becomes null: a quoted `""` is as empty as an unquoted empty cell."""
    return pl.when(text != "").then(text)


@dataclass(frozen=True)
class Header:
    """A header as the file has it, and the columns kept: names trimmed, blank ones dropped."""

    raw: tuple[str, ...]
    kept: tuple[int, ...]
    """Positions of the columns read; an unnamed column is dropped when it is empty."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.raw[index].strip() for index in self.kept)

    @property
    def unnamed(self) -> tuple[int, ...]:
        """Positions of the columns without a name (to check for values, then drop)."""
        return tuple(index for index, name in enumerate(self.raw) if not name.strip())


def read_header(raw: Sequence[str], path: Path, line: int | None) -> Header:
    """The header's names trimmed, its unnamed columns set aside; duplicates are an error."""
    header = Header(tuple(raw), tuple(i for i, name in enumerate(raw) if name.strip()))
    seen: set[str] = set()
    for name in header.names:
        if name in seen:
            raise InputError(
                f"column {name!r} appears twice in the header.",
                path=path,
                line=line,
                column=name,
                remedy="Rename or delete one of them.",
            )
        seen.add(name)
    return header


def unnamed_with_values(position: int, path: Path, line: int | None) -> InputError:
    """An unnamed column holding values: which field would they go to?"""
    return InputError(
        f"column {position + 1} of the header has no name, but holds values.",
        path=path,
        line=line,
        remedy="Name it, or delete the column.",
    )


def records_of(
    names: tuple[str, ...], lines: Sequence[int], frame: pl.DataFrame
) -> list[SourceRecord]:
    """Records of a batch of text columns, skipping those whose cells are all empty."""
    rows = zip(*(series.to_list() for series in frame.get_columns()), strict=True)
    return [
        SourceRecord(line, dict(zip(names, row, strict=False)))
        for line, row in zip(lines, rows, strict=True)
        if any(row)
    ]
