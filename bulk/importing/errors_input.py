"""An errors file as input: each row goes to the pass its `_pass` names, the `_` columns dropped.

The errors file (`bulk.importing.reports.write_errors_file`) holds the problem rows of every pass
in one CSV: the union of the passes' own columns (in pass order, each in first-seen order), then
`TOOL_COLUMNS`. Fed back — as SOURCE, or after `--customers` and friends, which then take only
that pass's rows — each pass reads the rows whose `_pass` names it, under the columns that are
its own. CSV cannot tell a column a pass never had from one its rows all leave empty, so a
column is taken to be a pass's own unless every row of the pass leaves it empty and either a
row of another pass sets it or it is a field only other passes have (`plan` is no contact's);
a column the pass cannot do without (`name`, `email`, its key columns) is always its own, so a
row lacking it is one invalid row, not a refused file. Dropped columns are empty in every row
of the pass: no value changes.

A fed-back row's line is its line in the errors file (which its `_file` then names), like any
record's line in the file it is read from: the original line was in another file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from bulk.errors import InputError
from bulk.importing.sources import (
    DEFAULT_BATCH_SIZE,
    Source,
    SourceFile,
    SourceRecord,
    _large_csv_fields,
    open_source,
)
from bulk.schema import COLLECTIONS, CUSTOMER, Kind
from bulk.settings import PASSES

PASS_COLUMN = "_pass"
TOOL_COLUMNS = (PASS_COLUMN, "_file", "_line", "_error_code", "_error_message")
"""The errors file's own columns, after the rows' columns; every `_` column is ignored as input."""
TOOL_PREFIX = "_"
FORMAT = "errors"
"""`SourceFile.format` of a pass's share of an errors file."""

_TEXT_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
_DELIMITERS = (",", ";", "\t", "|")
_METADATA_PREFIX = "metadata."


def is_errors_file(path: Path) -> bool:
    """A CSV file whose header has a `_pass` column (whatever its delimiter)."""
    if path.suffix.lower() not in _TEXT_SUFFIXES or not path.is_file():
        return False
    return _delimiter(path) is not None


def errors_file_passes(path: Path) -> tuple[str, ...]:
    """The passes an errors file holds rows of, in pass order; an unknown `_pass` is an input
    error naming its line. Only the `_pass` cells are read (ASCII in any encoding)."""
    delimiter = _delimiter(path) or ","
    found: set[str] = set()
    with _large_csv_fields(), path.open(encoding="utf-8-sig", errors="replace", newline="") as text:
        reader = csv.reader(text, delimiter=delimiter, strict=True)
        start = 1
        try:
            header = [name.strip() for name in next(reader, [])]
            index = header.index(PASS_COLUMN)
            start = reader.line_num + 1
            for record in reader:
                if any(cell.strip() for cell in record):
                    cell = record[index] if index < len(record) else ""
                    found.add(_pass_name(cell, path, start))
                start = reader.line_num + 1
        except csv.Error as error:
            raise InputError(f"is not valid CSV: {error}.", path=path, line=start) from None
    return tuple(name for name in PASSES if name in found)


def open_errors_file(source: SourceFile, *, encoding: str | None = None) -> Source:
    """The rows of `source.pass_name` in the errors file `source.path`, under its own columns."""
    rows = open_source(SourceFile(source.pass_name, source.path, "csv"), encoding=encoding)
    try:
        columns = _own_columns(source.pass_name, rows)
    except BaseException:
        rows.close()
        raise
    return ErrorsFileSource(source, rows, columns)


class ErrorsFileSource(Source):
    """One pass's share of an errors file, read through the CSV source of the whole file."""

    def __init__(self, source: SourceFile, rows: Source, columns: tuple[str, ...]) -> None:
        super().__init__(source, columns)
        self._rows = rows

    def _count_rows(self) -> int:
        return sum(len(batch) for batch in self.batches())

    def batches(self, size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[SourceRecord]]:
        pass_name = self.source.pass_name
        for batch in self._rows.batches(size):
            records = [self._own(record) for record in batch if _pass_of(record) == pass_name]
            if records:
                yield records

    def close(self) -> None:
        self._rows.close()

    def _own(self, record: SourceRecord) -> SourceRecord:
        """The record under the pass's own columns only."""
        return SourceRecord(record.line, {name: record.cells.get(name) for name in self.columns})


def _delimiter(path: Path) -> str | None:
    """The delimiter that makes `_pass` a column of the header line, if any does."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as text:
            first = text.readline()
    except OSError:
        return None
    for delimiter in _DELIMITERS:
        names = next(csv.reader([first], delimiter=delimiter), [])
        if PASS_COLUMN in (name.strip() for name in names):
            return delimiter
    return None


def _pass_name(cell: str, path: Path, line: int) -> str:
    name = cell.strip().lower()
    if name in PASSES:
        return name
    raise InputError(
        f"{cell!r} is not a pass." if name else "is empty: every row needs its pass.",
        path=path,
        line=line,
        column=PASS_COLUMN,
        remedy="Write " + ", ".join(PASSES[:-1]) + f" or {PASSES[-1]}.",
    )


def _pass_of(record: SourceRecord) -> str:
    return (record.cells.get(PASS_COLUMN) or "").strip().lower()


def _own_columns(pass_name: str, rows: Source) -> tuple[str, ...]:
    """The columns of the whole file that are `pass_name`'s own (see the module docstring)."""
    data_columns = [name for name in rows.columns if not name.startswith(TOOL_PREFIX)]
    set_by: dict[str, set[str]] = {name: set() for name in data_columns}
    for batch in rows.batches():
        for record in batch:
            row_pass = _pass_of(record)
            for name in data_columns:
                value = record.cells.get(name)
                if value is not None and value.strip():
                    set_by[name].add(row_pass)
    return tuple(name for name in data_columns if _is_own(name, pass_name, set_by[name]))


def _is_own(column: str, pass_name: str, setters: set[str]) -> bool:
    if pass_name in setters or column in _needed_columns(pass_name):
        return True
    if setters:
        return False  # only other passes' rows set it
    readers = [name for name in PASSES if _reads(name, column)]
    return not readers or pass_name in readers


def _needed_columns(pass_name: str) -> set[str]:
    """Columns without which the pass refuses the whole file."""
    schema = COLLECTIONS[pass_name]
    needed = {
        field.name for field in schema.fields if field.required and field.kind is not Kind.REFERENCE
    }
    if schema is CUSTOMER:
        return needed | {"external_id"}
    return needed | {"customer_external_id", "customer_id"}


def _reads(pass_name: str, column: str) -> bool:
    """Whether the pass reads `column` by its own name (without `--map`)."""
    schema = COLLECTIONS[pass_name]
    if schema is CUSTOMER and column.startswith(_METADATA_PREFIX):
        return True
    keys = {"external_id"} if schema is CUSTOMER else {"external_id", "customer_external_id"}
    return column in keys or any(field.name == column for field in schema.fields)
