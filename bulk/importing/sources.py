"""Finding and reading source files: CSV, spreadsheets or Parquet in, records of text cells out.

Every cell comes out as a string or None (an empty cell): no type inference, so `00123` stays
`00123`; typed cells (Parquet, spreadsheets) become text by `cells.typed_text`'s one rule, and
typing the cells for the API is `bulk.importing.cells`' job. Records carry the line they start on
in the source file, which is what the errors file and every message report. Header names are
trimmed, and unnamed columns that are empty in every row (what spreadsheets leave behind) are
dropped.

Reading is streamed in batches with polars (`scan_*().collect_batches()`), so memory is bounded
by the batch size, not by the file; batches are sized by bytes (`rows_per_batch`). Spreadsheets
are `bulk.importing.spreadsheets`' job. Polars is strict about what it accepts, so a CSV file is
checked before it is handed over:

- one pass over the bytes rejects binary files and invalid UTF-8 (with the line of the first bad
  byte), notes whether any quote character occurs at all, and finds C1 control characters
  (text decoded with the wrong codec, see `csv_dialect`);
- the delimiter is detected from the header line (`csv_dialect`) unless `--delimiter` gives it;
- the header line is parsed with the stdlib `csv` module, because polars renames duplicate
  names silently and keeps spaces around them;
- with `--encoding NAME` the file is first transcoded to a temporary UTF-8 file, streaming.

Polars counts records, not lines: a quoted cell holding a newline makes its record span several
lines. The physical line of every record is recovered exactly by counting the newlines inside the
cells of the records before it (a record ends at the first newline outside quotes, so every
other newline of the record is inside a cell). Files without a quote character skip that count.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import BinaryIO, NoReturn

import polars as pl

from bulk.errors import InputError
from bulk.importing.cells import typed_text
from bulk.importing.csv_dialect import C1_CONTROLS_UTF8, c1_warning, detect_delimiter, read_start
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
from bulk.importing.spreadsheets import (
    SPREADSHEET,
    SPREADSHEET_SUFFIXES,
    SpreadsheetSource,
    resolve_sheet,
    sheet_names,
)
from bulk.settings import PASSES

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "FORMATS",
    "Source",
    "SourceFile",
    "SourceRecord",
    "discover_sources",
    "open_source",
    "source_entries",
]

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    **dict.fromkeys(SPREADSHEET_SUFFIXES, SPREADSHEET),
}

_SCAN_CHUNK = 4 * 1024 * 1024
POLARS_CSV_CHUNK_BYTES = 4 * 1024 * 1024
"""The chunks polars' CSV reader reads ahead (four at most). With its default ones it held most
of a 210 MB file while the planner worked through the first batches (read peak 325 MiB; 196 MiB
with these). Only `POLARS_CSV_CHUNK_SIZE` sets it, read when a scan starts; a user's value wins."""
_PARQUET_MAGIC = b"PAR1"
_UTF8_NAMES = frozenset({"utf-8", "utf-8-sig"})
_ENCODING_REMEDY = "Pass --encoding cp1252 (what Excel writes on Windows), or the file's encoding."
_BINARY_REMEDY = "Export it from the spreadsheet as CSV (UTF-8), or pass a .parquet file."


# -- discovery -------------------------------------------------------------------------------


def discover_sources(folders: Sequence[Path], files: Mapping[str, Path]) -> list[SourceFile]:
    """The source files to import, in pass order.

    `folders` are the SOURCE arguments: folders and workbooks (see `source_entries`). `files`
    (from `--customers F` and friends, `F#SHEET` for a sheet) override what they hold for their
    pass.
    """
    for pass_name in files:
        if pass_name not in PASSES:
            raise ValueError(f"unknown pass {pass_name!r}")
    found: dict[str, SourceFile] = {}
    for folder in folders:
        label = folder if folder.name else folder.resolve()
        for pass_name, entries in _by_pass(source_entries(folder, label)).items():
            if pass_name in files:
                continue
            if len(entries) > 1:
                raise InputError(
                    f"holds two {pass_name} files, {entries[0].label} and {entries[1].label}.",
                    path=label,
                    remedy=f"Keep one of them, or name the one to use with --{pass_name}.",
                )
            if pass_name in found:
                raise InputError(
                    f"{pass_name} is given twice: {_where(found[pass_name])} and "
                    f"{_where(entries[0])}.",
                    remedy=f"Keep one of them, or name the one to use with --{pass_name}.",
                )
            found[pass_name] = entries[0]
    for pass_name, path in files.items():
        found[pass_name] = _named_file(pass_name, path)
    if not found:
        raise InputError(
            "No source files given.",
            remedy="Name a folder holding customers, contacts or onboardings files, "
            "or pass --customers, --contacts or --onboardings.",
        )
    return [found[pass_name] for pass_name in PASSES if pass_name in found]


def source_entries(source: Path, label: Path | None = None) -> list[SourceFile]:
    """What one SOURCE argument supplies, a `SourceFile` per (pass, file, sheet).

    A folder: its `customers`, `contacts` and `onboardings` files (any supported extension and
    letter case), and what each workbook in it supplies. A workbook: its sheets named for a
    pass; one named for a pass itself (`customers.xlsx`) supplies that pass from its first
    sheet when no sheet has the pass's name. Several entries for one pass are the caller's
    error to report.
    """
    label = label or source
    if not source.exists():
        raise InputError("does not exist.", path=label)
    if source.is_dir():
        return _folder_entries(source, label)
    if source.suffix.lower() in SPREADSHEET_SUFFIXES:
        return _workbook_entries(source)
    fed_back = _errors_file_entries(source, label)
    if fed_back is not None:
        return fed_back
    raise InputError(
        "is not a folder or a workbook.",
        path=label,
        remedy="Name a folder, or pass a file with --customers, --contacts or --onboardings.",
    )


def _folder_entries(folder: Path, label: Path) -> list[SourceFile]:
    entries: list[SourceFile] = []
    for entry in sorted(folder.iterdir()):
        stem, suffix = entry.stem.lower(), entry.suffix.lower()
        if suffix not in FORMATS or entry.name.startswith(("~$", ".")) or not entry.is_file():
            continue  # `~$book.xlsx` is the lock file Excel leaves next to an open workbook
        if FORMATS[suffix] == SPREADSHEET:
            entries.extend(_workbook_entries(entry, required=False))
        elif stem in PASSES:
            entries.append(SourceFile(stem, entry, FORMATS[suffix]))
    if not entries:
        raise InputError(
            "holds no customers, contacts or onboardings file (CSV, spreadsheet or Parquet).",
            path=label,
            remedy="Name the files customers.csv, contacts.csv, onboardings.csv (or .xlsx, "
            ".parquet), name a workbook's sheets so, or pass the files with --customers, "
            "--contacts or --onboardings.",
        )
    return entries


def _errors_file_entries(source: Path, label: Path) -> list[SourceFile] | None:
    """An errors file's passes, each reading only its own rows (routed by `_pass`); None for a
    file that is not one."""
    from bulk.importing.errors_input import FORMAT, errors_file_passes, is_errors_file

    if not is_errors_file(source):
        return None
    passes = errors_file_passes(source)
    if not passes:
        raise InputError("is an errors file without rows: there is nothing to import.", path=label)
    return [SourceFile(pass_name, source, FORMAT) for pass_name in passes]


def _workbook_entries(path: Path, *, required: bool = True) -> list[SourceFile]:
    """A workbook's sheets named for a pass; one named for a pass itself uses its first sheet."""
    names = sheet_names(path)
    entries = [
        SourceFile(name.lower(), path, SPREADSHEET, name)
        for name in names
        if name.lower() in PASSES
    ]
    stem = path.stem.lower()
    if stem in PASSES and names and not any(entry.pass_name == stem for entry in entries):
        entries.append(SourceFile(stem, path, SPREADSHEET, names[0]))
    if not entries and required:
        raise InputError(
            f"has no sheet named customers, contacts or onboardings (its sheets: "
            f"{', '.join(names) or 'none'}).",
            path=path,
            remedy="Rename the sheets, or pick one with --customers FILE#SHEET (and "
            "--contacts, --onboardings).",
        )
    return entries


def _by_pass(entries: Iterable[SourceFile]) -> dict[str, list[SourceFile]]:
    grouped: dict[str, list[SourceFile]] = {}
    for entry in entries:
        grouped.setdefault(entry.pass_name, []).append(entry)
    return grouped


def _where(entry: SourceFile) -> str:
    return str(entry.path) + (f"#{entry.sheet}" if entry.sheet else "")


def _named_file(pass_name: str, given: Path) -> SourceFile:
    """`--customers F` (or `F#SHEET`): the file, checked to exist, and the sheet it names
    (or the one named for the pass, else the first), so every message names the sheet."""
    path, sheet = split_sheet(given)
    if not path.exists():
        raise InputError("does not exist.", path=path)
    if path.is_dir():
        raise InputError(
            "is a folder, not a file.",
            path=path,
            remedy=f"Name a .csv, .xlsx or .parquet file after --{pass_name}.",
        )
    named = SourceFile(pass_name, path, format_of(path), sheet)
    if named.format != SPREADSHEET:
        return named
    return replace(named, sheet=resolve_sheet(sheet_names(path), named))


def split_sheet(given: Path) -> tuple[Path, str | None]:
    """`book.xlsx#Contacts` → (`book.xlsx`, `Contacts`); any other path as it is."""
    text = str(given)
    if given.exists():
        return given, None
    # the first `#` after a workbook's name: a sheet's name may hold a `#` too
    for index in [position for position, char in enumerate(text) if char == "#"]:
        base, sheet = Path(text[:index]), text[index + 1 :]
        if sheet and base.suffix.lower() in SPREADSHEET_SUFFIXES:
            return base, sheet
    return given, None


def format_of(path: Path) -> str:
    from bulk.importing.errors_input import FORMAT, is_errors_file

    if is_errors_file(path):
        return FORMAT  # given for one pass: that pass's rows only
    return FORMATS.get(path.suffix.lower(), "csv")


# -- reading ---------------------------------------------------------------------------------


def open_source(
    source: SourceFile, *, encoding: str | None = None, delimiter: str | None = None
) -> Source:
    """Open a source file for reading, checking everything that can be checked up front.

    `encoding` names the text encoding of a CSV file (default UTF-8) and `delimiter` its
    delimiter (default: detected from the header); neither applies to other formats. Raise
    `InputError` for a file that cannot be read.
    """
    path = source.path
    if not path.exists():
        raise InputError("does not exist.", path=path)
    if not path.is_file():
        raise InputError("is not a file.", path=path)
    if path.stat().st_size == 0:
        raise InputError("is empty.", path=path)
    if source.format == "parquet":
        return _ParquetSource(source)
    if source.format == "csv":
        return _CsvSource.open(source, encoding, delimiter)
    if source.format == SPREADSHEET:
        return SpreadsheetSource(source)
    if source.format == "errors":
        from bulk.importing.errors_input import open_errors_file

        return open_errors_file(source, encoding=encoding)
    raise ValueError(f"unknown format {source.format!r}")


# -- CSV -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scan:
    """What one pass over a CSV file's bytes tells."""

    has_quotes: bool
    lines: int
    c1_line: int | None
    """The first line holding a C1 control character (U+0080-U+009F), if any."""


@dataclass(frozen=True)
class _CsvLayout:
    data_path: Path
    """The file polars reads: the source, or its UTF-8 transcoding."""
    delimiter: str
    header: Header
    first_data_line: int
    scan: _Scan


class _CsvSource(Source):
    def __init__(self, source: SourceFile, layout: _CsvLayout, temporary: Path | None) -> None:
        super().__init__(source, layout.header.names)
        self._layout = layout
        self._data_path = layout.data_path
        size = layout.data_path.stat().st_size
        self._bytes_per_row = size / max(1, layout.scan.lines - layout.first_data_line + 1)
        self._finalizer = (
            weakref.finalize(self, _unlink, temporary) if temporary is not None else None
        )

    @classmethod
    def open(cls, source: SourceFile, encoding: str | None, delimiter: str | None) -> _CsvSource:
        path = source.path
        with path.open("rb") as stream:
            if stream.read(len(_PARQUET_MAGIC)) == _PARQUET_MAGIC:
                raise InputError(
                    "is not a CSV file (it is a Parquet file).",
                    path=path,
                    remedy="Give it a .parquet extension.",
                )
        codec = _codec_name(encoding)
        temporary: Path | None = None
        data_path = path
        if codec not in _UTF8_NAMES:
            temporary = _transcode(path, codec)
            data_path = temporary
        try:
            layout = _layout(data_path, path, delimiter)
            opened = cls(source, layout, temporary)
            opened._check_unnamed()
        except BaseException:
            if temporary is not None:
                _unlink(temporary)
            raise
        if layout.scan.c1_line is not None:
            opened.warnings.append(
                c1_warning(path.name, layout.scan.c1_line, None if temporary is None else codec)
            )
        return opened

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()

    def _scan(self) -> pl.LazyFrame:
        """The file with its columns named by position (`_0`, `_1`...), the kept ones selected."""
        layout = self._layout
        return pl.scan_csv(
            self._data_path,
            infer_schema=False,
            quote_char='"',
            separator=layout.delimiter,
            new_columns=[f"_{index}" for index in range(len(layout.header.raw))],
        )

    def _kept(self) -> list[str]:
        return [f"_{index}" for index in self._layout.header.kept]

    def _check_unnamed(self) -> None:
        """Columns without a name are dropped if they are empty in every row, else refused."""
        header = self._layout.header
        unnamed = header.unnamed
        if not unnamed:
            return
        filled = self._scan().select(
            (pl.col(f"_{index}").is_not_null() & (pl.col(f"_{index}") != "")).any()
            for index in unnamed
        )
        try:
            holds = filled.collect().row(0)
        except pl.exceptions.PolarsError as error:
            raise self._diagnose(error) from None
        for index, has_values in zip(unnamed, holds, strict=True):
            if has_values:
                line = self._layout.first_data_line - 1
                raise unnamed_with_values(index, self.path, line)

    def _count_rows(self) -> int:
        not_blank = pl.any_horizontal(
            [pl.col(name).is_not_null() & (pl.col(name) != "") for name in self._kept()]
        )
        try:
            count = self._scan().filter(not_blank).select(pl.len()).collect().item()
        except pl.exceptions.PolarsError as error:
            raise self._diagnose(error) from None
        return int(count)

    def batches(self, size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[SourceRecord]]:
        kept = self._kept()
        size = rows_per_batch(len(self._layout.header.raw), self._bytes_per_row, size)
        cleaned = [non_empty(pl.col(name)).alias(name) for name in kept]
        every = [f"_{index}" for index in range(len(self._layout.header.raw))]
        newlines = pl.sum_horizontal(
            [pl.col(name).str.count_matches("\n", literal=True).fill_null(0) for name in every]
        ).cast(pl.Int64)
        next_line = self._layout.first_data_line
        os.environ.setdefault("POLARS_CSV_CHUNK_SIZE", str(POLARS_CSV_CHUNK_BYTES))
        for frame in _frames(self._scan().collect_batches(chunk_size=size), self._diagnose):
            height = frame.height
            if height == 0:
                continue
            extra = frame.select(newlines).to_series() if self._layout.scan.has_quotes else None
            lines: Sequence[int]
            if extra is None or not extra.sum():
                lines = range(next_line, next_line + height)
                next_line += height
            else:
                starts = pl.int_range(height, eager=True) + (extra.cum_sum() - extra) + next_line
                lines = starts.to_list()
                next_line += height + int(extra.sum())
            yield records_of(self.columns, lines, frame.select(cleaned))

    def _diagnose(self, error: pl.exceptions.PolarsError) -> InputError:
        """Find the record polars choked on with the stdlib parser, to name its line."""
        path = self.path
        width = len(self._layout.header.raw)
        delimiter = self._layout.delimiter
        with _large_csv_fields(), self._data_path.open(encoding="utf-8-sig", newline="") as text:
            reader = csv.reader(text, strict=True, delimiter=delimiter)
            start = 1
            try:
                for number, record in enumerate(reader):
                    if number and len(record) > width:
                        return InputError(
                            f"has {len(record)} cells but the header has {width} columns.",
                            path=path,
                            line=start,
                            remedy=f"Quote cells that contain {_plural(delimiter)}, or add the "
                            "missing column names to the header.",
                        )
                    start = reader.line_num + 1
            except csv.Error as parse_error:
                return InputError(
                    f"is not valid CSV: {parse_error}.",
                    path=path,
                    line=start,
                    remedy='Check the quotes: a quoted cell ends at a lone ", '
                    'and a quote inside a quoted cell is written "".',
                )
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unknown"
        return InputError(f"cannot be read as CSV ({first_line}).", path=path)


def _plural(delimiter: str) -> str:
    return {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}.get(
        delimiter, f"{delimiter!r}"
    )


def _layout(data_path: Path, path: Path, delimiter: str | None) -> _CsvLayout:
    """Scan a UTF-8 file, find its delimiter and header, and check polars reads them alike."""
    scan = _scan_utf8(data_path, path)
    if delimiter is None:
        delimiter = detect_delimiter(read_start(data_path), path)
    raw, header_lines = _read_header(data_path, path, delimiter)
    header = read_header(raw, path, header_lines[0])
    polars_names = _polars_header(data_path, path, delimiter)
    named = [index for index in range(len(raw)) if raw[index]]
    if len(polars_names) != len(raw) or any(polars_names[i] != raw[i] for i in named):
        raise InputError(
            "the header line cannot be read consistently (blank or odd lines before it?).",
            path=path,
            line=header_lines[0],
            remedy="Make the column names the first line of the file.",
        )
    return _CsvLayout(data_path, delimiter, header, header_lines[1] + 1, scan)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


@contextlib.contextmanager
def _large_csv_fields() -> Iterator[None]:
    """Lift the stdlib csv module's 128 KiB cell limit for a moment (polars has none)."""
    previous = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _codec_name(encoding: str | None) -> str:
    if encoding is None:
        return "utf-8"
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise InputError(
            f"Unknown encoding {encoding!r}.",
            remedy="Pass a Python codec name to --encoding, such as latin-1, cp1252 or utf-16.",
        ) from None


def _transcode(path: Path, codec: str) -> Path:
    """Copy a file in another encoding to a temporary UTF-8 file, a chunk at a time."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    handle, name = tempfile.mkstemp(prefix="bulk-", suffix=".csv")
    target = Path(name)
    lines = 0
    try:
        with path.open("rb") as source, os.fdopen(handle, "wb") as sink:
            while True:
                chunk = source.read(_SCAN_CHUNK)
                try:
                    text = decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as error:
                    good = error.object[: error.start]
                    before = lines + codecs.decode(good, codec, "replace").count("\n")
                    raise InputError(
                        f"is not valid {codec} (byte 0x{error.object[error.start]:02X}).",
                        path=path,
                        line=before + 1,
                        remedy=_ENCODING_REMEDY,
                    ) from None
                lines += text.count("\n")
                sink.write(text.encode("utf-8"))
                if not chunk:
                    break
    except BaseException:
        _unlink(target)
        raise
    return target


def _scan_utf8(data_path: Path, path: Path) -> _Scan:
    """One pass over the bytes: NUL bytes and invalid UTF-8 are errors. Is there any quote,
    how many lines are there, and where is the first C1 control character?"""
    has_quotes = False
    c1_line: int | None = None
    lines = 0
    pending = b""
    with data_path.open("rb") as stream:
        while True:
            chunk = stream.read(_SCAN_CHUNK)
            data = pending + chunk if pending else chunk
            if not chunk:
                if pending:
                    _invalid_utf8(path, lines + 1, pending[0])
                return _Scan(has_quotes, lines + 1, c1_line)
            if b"\0" in data:
                raise InputError(
                    "is not a CSV file (it holds binary data).", path=path, remedy=_BINARY_REMEDY
                )
            has_quotes = has_quotes or b'"' in data
            pending = b""
            if not data.isascii():
                try:
                    _, consumed = codecs.utf_8_decode(data, "strict", False)
                except UnicodeDecodeError as error:
                    _invalid_utf8(
                        path, lines + data.count(b"\n", 0, error.start) + 1, data[error.start]
                    )
                pending = data[consumed:]
                data = data[:consumed]
                if c1_line is None and (control := C1_CONTROLS_UTF8.search(data)):
                    c1_line = lines + data.count(b"\n", 0, control.start()) + 1
            lines += data.count(b"\n")


def _invalid_utf8(path: Path, line: int, byte: int) -> NoReturn:
    raise InputError(
        f"is not valid UTF-8 (byte 0x{byte:02X}).", path=path, line=line, remedy=_ENCODING_REMEDY
    )


def _read_header(
    data_path: Path, path: Path, delimiter: str
) -> tuple[tuple[str, ...], tuple[int, int]]:
    """The raw header and the lines it spans (first, last), skipping leading blank lines."""
    with _large_csv_fields(), data_path.open(encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, strict=True, delimiter=delimiter)
        first = 1
        try:
            for record in reader:
                if record:
                    return tuple(record), (first, reader.line_num)
                first = reader.line_num + 1
        except csv.Error as error:
            raise InputError(
                f"the header line is not valid CSV: {error}.", path=path, line=first
            ) from None
    raise InputError("is empty.", path=path, remedy="Start it with a line of column names.")


def _polars_header(data_path: Path, path: Path, delimiter: str) -> list[str]:
    try:
        scan = pl.scan_csv(data_path, infer_schema=False, n_rows=0, separator=delimiter)
        return scan.collect_schema().names()
    except pl.exceptions.NoDataError:
        raise InputError("is empty.", path=path) from None
    except pl.exceptions.PolarsError as error:
        raise InputError(f"cannot be read as CSV ({error}).", path=path) from None


# -- Parquet ---------------------------------------------------------------------------------


class _ParquetSource(Source):
    def __init__(self, source: SourceFile) -> None:
        path = source.path
        with path.open("rb") as stream:
            if not _is_parquet(stream):
                raise InputError(
                    "is not a Parquet file.",
                    path=path,
                    remedy="Pass a Parquet file, or a CSV file with a .csv extension.",
                )
        try:
            schema = pl.scan_parquet(path).collect_schema()
        except pl.exceptions.PolarsError as error:
            raise _corrupt(path, error) from None
        header = read_header(schema.names(), path, None)
        super().__init__(source, header.names)
        kept = [schema.names()[index] for index in header.kept]
        self._text = [
            _as_text(name, schema[name], path).alias(shown)
            for name, shown in zip(kept, header.names, strict=True)
        ]
        self.list_columns = {
            shown: str(schema[name])
            for name, shown in zip(kept, header.names, strict=True)
            if isinstance(schema[name], pl.List)
        }
        self._check_unnamed(schema, header)

    def _check_unnamed(self, schema: pl.Schema, header: Header) -> None:
        names = schema.names()
        for index in header.unnamed:
            column = pl.col(names[index])
            filled = pl.scan_parquet(self.path).select(column.is_not_null().any())
            try:
                if filled.collect().item():
                    raise unnamed_with_values(index, self.path, None)
            except pl.exceptions.PolarsError as error:
                raise _corrupt(self.path, error) from None

    def _count_rows(self) -> int:
        not_blank = pl.any_horizontal([expr.is_not_null() for expr in self._text])
        try:
            count = pl.scan_parquet(self.path).filter(not_blank).select(pl.len()).collect().item()
        except pl.exceptions.PolarsError as error:
            raise _corrupt(self.path, error) from None
        return int(count)

    def _bytes_per_row(self) -> float:
        """The file's size per row, times a typical compression ratio."""
        try:
            rows = pl.scan_parquet(self.path).select(pl.len()).collect().item()
        except pl.exceptions.PolarsError as error:
            raise _corrupt(self.path, error) from None
        return _PARQUET_EXPANSION * self.path.stat().st_size / max(1, int(rows))

    def batches(self, size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[SourceRecord]]:
        next_line = 2
        size = rows_per_batch(len(self._text), self._bytes_per_row(), size)
        frames = pl.scan_parquet(self.path).select(self._text).collect_batches(chunk_size=size)
        for frame in _frames(frames, partial(_corrupt, self.path)):
            height = frame.height
            yield records_of(self.columns, range(next_line, next_line + height), frame)
            next_line += height


_PARQUET_EXPANSION = 4
"""How much larger a Parquet file's text is than the file, about (compression and encoding)."""


def _is_parquet(stream: BinaryIO) -> bool:
    head = stream.read(len(_PARQUET_MAGIC))
    if stream.seek(0, os.SEEK_END) < 2 * len(_PARQUET_MAGIC):
        return False
    stream.seek(-len(_PARQUET_MAGIC), os.SEEK_END)
    return head == _PARQUET_MAGIC and stream.read(len(_PARQUET_MAGIC)) == _PARQUET_MAGIC


def _frames(
    frames: Iterable[pl.DataFrame],
    explain: Callable[[pl.exceptions.PolarsError], InputError],
) -> Iterator[pl.DataFrame]:
    """The frames a polars batch reader yields, its errors raised as `explain` words them."""
    batches = iter(frames)
    while True:
        try:
            frame = next(batches)
        except StopIteration:
            return
        except pl.exceptions.PolarsError as error:
            raise explain(error) from None
        yield frame


def _corrupt(path: Path, error: pl.exceptions.PolarsError) -> InputError:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return InputError(f"is not a valid Parquet file ({detail}).", path=path)


def _as_text(name: str, dtype: pl.DataType, path: Path) -> pl.Expr:
    """An expression turning a Parquet column into text cells, or an InputError."""
    text = typed_text(name, dtype)
    if text is None:
        raise InputError(
            f"has type {dtype}, which cannot be read as text.",
            path=path,
            column=name,
            remedy="Convert the column to text, numbers, booleans, dates or lists of text.",
        )
    return non_empty(text)
