"""Workbooks (`.xlsx`, `.xlsm`, `.xls`, `.ods`) read with fastexcel (calamine), as text records.

Each sheet is read twice, because fastexcel guesses a column's type from every row it loads,
header included: once as text for the header (and the row it is on), once typed for the data
rows below it. The data load guesses each column's type from all its rows (a guess from the
first thousand silently empties a later cell of another type), so a column of numbers stays
numbers and a column mixing numbers and text is text; typed columns become text by
`cells.typed_text`'s rule. Spreadsheets have no date type: a date is a datetime at midnight,
and reads as `YYYY-MM-DD`. A text column holding date cells (dates typed as text next to real
ones) is read a third time, as datetimes, for those cells alone. fastexcel refuses a column
mixing durations (an ODS time of day, an xlsx `[h]:mm` cell) with any other type: such a sheet
is read again with those columns as text, and once more as durations for their duration cells.

Cells holding a formula error (`#DIV/0!`) come out of fastexcel as empty cells, typed or not.

Row numbers are the sheet's own: loading with `header_row=None` and no skipped rows starts at
the sheet's row 1 (calamine's default starts at the first row holding a cell), and blank rows
come out as rows of nulls, so a record's line is the number the spreadsheet shows.

Calamine parses a sheet whole: memory is what the sheet holds, not a batch. Loading it in row
windows (`skip_rows`/`n_rows`) parses it again for every window, for no saving (measured in
`benchmarks/source_memory.py`), so a sheet is loaded once, kept as compact text columns, and
handed out in batches.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import fastexcel
import polars as pl

from bulk.errors import InputError
from bulk.importing.cells import typed_text
from bulk.importing.source_types import (
    DEFAULT_BATCH_SIZE,
    Header,
    Source,
    SourceFile,
    SourceRecord,
    non_empty,
    read_header,
    records_of,
    rows_per_batch,
    unnamed_with_values,
)

SPREADSHEET = "spreadsheet"
SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
HEADER_SEARCH_ROWS = 100
"""Blank rows tolerated above the header."""

# fastexcel logs a warning for every all-empty column ("falling back to string"): that is
# what an empty column is here too, so it is not worth the user's attention.
logging.getLogger("fastexcel").setLevel(logging.ERROR)


def sheet_names(path: Path) -> list[str]:
    """The workbook's sheet names, in workbook order."""
    return list(_workbook(path).sheet_names)


def _workbook(path: Path) -> fastexcel.ExcelReader:
    try:
        return fastexcel.read_excel(path)
    except fastexcel.FastExcelError as error:
        raise InputError(
            f"cannot be read as a workbook ({_first_line(error)}).",
            path=path,
            remedy="Save it again from the spreadsheet (.xlsx), or export the sheets as CSV.",
        ) from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def resolve_sheet(names: Sequence[str], source: SourceFile) -> str:
    """The sheet `source` reads: the one it names (any letter case), else the one named for
    the pass, else the first."""
    wanted = source.sheet if source.sheet is not None else source.pass_name
    matches = [name for name in names if name.lower() == wanted.lower()]
    if matches:
        return matches[0]
    if source.sheet is None and names:
        return names[0]
    raise InputError(
        f"has no sheet {source.sheet!r} (its sheets: {', '.join(names) or 'none'}).",
        path=source.path,
        remedy=f"Name one of its sheets after the #: --{source.pass_name} "
        f"{source.path.name}#SHEET.",
    )


class SpreadsheetSource(Source):
    """One sheet, loaded once when opened (so file errors come before any row is planned)."""

    def __init__(self, source: SourceFile) -> None:
        reader = _workbook(source.path)
        sheet = resolve_sheet(reader.sheet_names, source)
        shown = replace(source, sheet=sheet).shown_path
        header_index, raw = _header(reader, sheet, shown)
        header = read_header(raw, shown, header_index + 1)
        super().__init__(source, header.names)
        self._first_line = header_index + 2
        self._text = _text_frame(reader, sheet, header, header_index, shown)

    def _count_rows(self) -> int:
        blank = self._text.select(pl.all_horizontal(pl.all().is_null()).sum()).item()
        return self._text.height - int(blank)

    def batches(self, size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[SourceRecord]]:
        frame = self._text
        if frame.height == 0:
            return
        size = rows_per_batch(frame.width, frame.estimated_size() / frame.height, size)
        for offset in range(0, frame.height, size):
            batch = frame.slice(offset, size)
            first = self._first_line + offset
            records = records_of(self.columns, range(first, first + batch.height), batch)
            if records:
                yield records

    def close(self) -> None:
        self._text = self._text.clear()


def _header(reader: fastexcel.ExcelReader, sheet: str, shown: Path) -> tuple[int, list[str]]:
    """The first non-blank row of the sheet (0-based) and its cells as text."""
    top = _load(reader, sheet, shown, n_rows=HEADER_SEARCH_ROWS, dtypes="string")
    for index, row in enumerate(top.iter_rows()):
        if any(cell is not None and str(cell).strip() for cell in row):
            return index, ["" if cell is None else str(cell) for cell in row]
    if top.height == 0:
        raise InputError("is empty.", path=shown, remedy="Start it with a row of column names.")
    raise InputError(
        f"has no header in its first {HEADER_SEARCH_ROWS} rows.",
        path=shown,
        remedy="Make the column names the first row of the sheet.",
    )


def _text_frame(
    reader: fastexcel.ExcelReader, sheet: str, header: Header, header_index: int, shown: Path
) -> pl.DataFrame:
    """The data rows below the header, typed by fastexcel, as text columns under their names."""
    data = _typed_rows(reader, sheet, shown, skip_rows=header_index + 1)
    positions = data.columns
    if len(positions) < len(header.raw):  # no data rows: fastexcel knows no columns
        return pl.DataFrame(schema=dict.fromkeys(header.names, pl.String))
    for index in header.unnamed:
        if data.select(_holds_text(positions[index])).item():
            raise unnamed_with_values(index, shown, header_index + 1)
    kept = [positions[index] for index in header.kept]
    data = _with_dates_of_text_columns(reader, sheet, shown, header_index, data, kept)
    columns = []
    for position, name in zip(kept, header.names, strict=True):
        text = _cell_text(position, data.schema)
        columns.append(non_empty(text).alias(name))
    return data.select(columns)


def _cell_text(position: str, schema: pl.Schema) -> pl.Expr:
    """A column's cells as text; in a text column, the date and duration cells (see below) by
    the rule."""
    text = typed_text(position, schema[position], spreadsheet=True)
    if text is None:  # fastexcel yields no other types; kept for a future one
        text = pl.col(position).cast(pl.String)
    dates = _dates_name(position)
    if dates in schema:
        as_date = typed_text(dates, schema[dates], spreadsheet=True)
        looks_like_one = pl.col(position).str.contains(_FASTEXCEL_DATETIME.pattern)
        text = pl.when(looks_like_one & pl.col(dates).is_not_null()).then(as_date).otherwise(text)
    durations = _durations_name(position)
    if durations in schema:
        as_duration = typed_text(durations, schema[durations], spreadsheet=True)
        text = pl.when(pl.col(durations).is_not_null()).then(as_duration).otherwise(text)
    return text


_FASTEXCEL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?$")
"""How fastexcel writes a date cell in a column it reads as text (one mixing dates and text):
`2026-05-01 09:30:15` from xlsx and xls, the cell's own `2026-05-01T09:30:15` from ODS."""


def _dates_name(position: str) -> str:
    return f"{position}:dates"


def _durations_name(position: str) -> str:
    return f"{position}:durations"


def _typed_rows(
    reader: fastexcel.ExcelReader, sheet: str, shown: Path, *, skip_rows: int
) -> pl.DataFrame:
    """The rows from the sheet's row `skip_rows + 1`, typed by fastexcel's guess. A column
    mixing durations with other types, which fastexcel refuses, is text, with its durations
    beside it (as text, fastexcel loses an ODS duration and misreads an xlsx one)."""
    try:
        return _load(reader, sheet, shown, skip_rows=skip_rows)
    except fastexcel.UnsupportedColumnTypeCombinationError as error:
        refused = error
    durations = _load(reader, sheet, shown, skip_rows=skip_rows, dtypes="duration")
    timed = [
        index
        for index, position in enumerate(durations.columns)
        if durations.get_column(position).is_not_null().any()
    ]
    if not timed:  # fastexcel refuses no other mix of types; kept for a future one
        raise _unreadable(refused, shown)
    text: dict[str | int, fastexcel.DType] = dict.fromkeys(timed, "string")
    data = _load(reader, sheet, shown, skip_rows=skip_rows, dtypes=text)
    return data.with_columns(
        durations.get_column(durations.columns[index]).alias(_durations_name(data.columns[index]))
        for index in timed
    )


def _with_dates_of_text_columns(
    reader: fastexcel.ExcelReader,
    sheet: str,
    shown: Path,
    header_index: int,
    data: pl.DataFrame,
    kept: list[str],
) -> pl.DataFrame:
    """A column mixing dates and text is text, its dates written `2026-05-01 00:00:00`: those
    columns are read again as datetimes, where only the date cells (and numbers, whose text
    never looks like a date) have a value, so their dates can follow the rule too."""
    mixed = [
        position
        for position in kept
        if data.schema[position] == pl.String
        and data.select(pl.col(position).str.contains(_FASTEXCEL_DATETIME.pattern).any()).item()
    ]
    if not mixed:
        return data
    dates = _load(
        reader,
        sheet,
        shown,
        skip_rows=header_index + 1,
        dtypes="datetime",
        columns=[data.columns.index(position) for position in mixed],
    )
    return data.with_columns(
        dates.get_column(dates.columns[index]).alias(_dates_name(position))
        for index, position in enumerate(mixed)
    )


def _holds_text(name: str) -> pl.Expr:
    """Does the column hold anything but empty or blank cells?"""
    return (pl.col(name).cast(pl.String).str.strip_chars() != "").any()


def _load(
    reader: fastexcel.ExcelReader,
    sheet: str,
    shown: Path,
    *,
    skip_rows: int = 0,
    n_rows: int | None = None,
    dtypes: fastexcel.DType | dict[str | int, fastexcel.DType] | None = None,
    columns: list[int] | None = None,
) -> pl.DataFrame:
    """Rows of the sheet from its row `skip_rows + 1`, without a header row: positions are the
    sheet's. Each column (or only `columns`) is of its type in `dtypes`, else of fastexcel's
    guess over every row loaded.

    Only a guess can raise `UnsupportedColumnTypeCombinationError`, which `_typed_rows` handles.
    """
    try:
        loaded = reader.load_sheet(
            sheet,
            header_row=None,
            skip_rows=skip_rows or [],  # not None: that would skip the blank rows at the top
            n_rows=n_rows,
            schema_sample_rows=None,
            use_columns=columns,
            dtypes=dtypes,
        )
        return loaded.to_polars()
    except fastexcel.UnsupportedColumnTypeCombinationError:
        raise
    except fastexcel.FastExcelError as error:
        raise _unreadable(error, shown) from None


def _unreadable(error: Exception, shown: Path) -> InputError:
    return InputError(f"cannot be read ({_first_line(error)}).", path=shown)
