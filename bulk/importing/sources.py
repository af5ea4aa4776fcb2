"""Finding and reading source files: CSV or Parquet in, records of text cells out.

Every cell comes out as a string or None (an empty cell): no type inference, so `00123` stays
`00123`; typing the cells is `bulk.importing.cells`' job. Records carry the line they start on
in the source file, which is what the errors file and every message report.

Reading is streamed in batches with polars (`scan_*().collect_batches()`), so memory is bounded
by the batch size, not by the file. Polars is strict about what it accepts, so a CSV file is
checked before it is handed over:

- one pass over the bytes rejects binary files and invalid UTF-8 (with the line of the first bad
  byte), and notes whether any quote character occurs at all;
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
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NoReturn

import polars as pl

from bulk.errors import InputError
from bulk.schema import TIMESTAMP_FORMAT
from bulk.settings import PASSES

FORMATS = {".csv": "csv", ".parquet": "parquet"}
DEFAULT_BATCH_SIZE = 50_000

_SCAN_CHUNK = 4 * 1024 * 1024
_PARQUET_MAGIC = b"PAR1"
_UTF8_NAMES = frozenset({"utf-8", "utf-8-sig"})
_ENCODING_REMEDY = "Pass --encoding latin-1 (or the file's encoding)."
_BINARY_REMEDY = "Export it from the spreadsheet as CSV (UTF-8), or pass a .parquet file."


@dataclass(frozen=True)
class SourceFile:
    """One input file and the pass that reads it."""

    pass_name: str
    path: Path
    format: str
    """"csv", "parquet" or "errors" (one pass's rows of an errors file)."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One data row: the line it starts on and its cells under the file's own column names."""

    line: int
    """CSV: the physical line the record starts on (the header is line 1). Parquet: the 1-based
    row number + 1, so the first data row is 2 in both formats."""
    cells: dict[str, str | None]


# -- discovery -------------------------------------------------------------------------------


def discover_sources(folders: Sequence[Path], files: Mapping[str, Path]) -> list[SourceFile]:
    """The source files to import, in pass order.

    Each folder may hold `customers`, `contacts` and `onboardings` files (`.csv` or `.parquet`,
    any letter case); other files and subfolders are ignored. `files` (from `--customers F` and
    friends) override what the folders hold for their pass.
    """
    for pass_name in files:
        if pass_name not in PASSES:
            raise ValueError(f"unknown pass {pass_name!r}")
    found: dict[str, Path] = {}
    for folder in folders:
        label = folder if folder.name else folder.resolve()
        for pass_name, paths in _sources_in(folder, label).items():
            if pass_name in files:
                continue
            if len(paths) > 1:
                raise InputError(
                    f"holds two {pass_name} files, {paths[0].name} and {paths[1].name}.",
                    path=label,
                    remedy=f"Keep one of them, or name the one to use with --{pass_name}.",
                )
            if pass_name in found:
                raise InputError(
                    f"{pass_name} is given twice: {found[pass_name]} and {paths[0]}.",
                    remedy=f"Keep one of them, or name the one to use with --{pass_name}.",
                )
            found[pass_name] = paths[0]
    for pass_name, path in files.items():
        if not path.exists():
            raise InputError("does not exist.", path=path)
        if path.is_dir():
            raise InputError(
                "is a folder, not a file.",
                path=path,
                remedy=f"Name a .csv or .parquet file after --{pass_name}.",
            )
        found[pass_name] = path
    if not found:
        raise InputError(
            "No source files given.",
            remedy="Name a folder holding customers, contacts or onboardings files, "
            "or pass --customers, --contacts or --onboardings.",
        )
    return [
        SourceFile(pass_name, found[pass_name], _format_of(found[pass_name]))
        for pass_name in PASSES
        if pass_name in found
    ]


def _sources_in(source: Path, label: Path) -> dict[str, list[Path]]:
    """A SOURCE's files by pass: an errors file's passes (routed by `_pass`), or a folder's."""
    from bulk.importing.errors_input import errors_file_passes, is_errors_file

    if not is_errors_file(source):
        return _folder_sources(source, label)
    passes = errors_file_passes(source)
    if not passes:
        raise InputError("is an errors file without rows: there is nothing to import.", path=label)
    return {pass_name: [source] for pass_name in passes}


def _folder_sources(folder: Path, label: Path) -> dict[str, list[Path]]:
    """The folder's source files by pass (more than one for a pass is the caller's error)."""
    if not folder.exists():
        raise InputError("does not exist.", path=label)
    if not folder.is_dir():
        raise InputError(
            "is not a folder.",
            path=label,
            remedy="Name a folder, or pass a file with --customers, --contacts or --onboardings.",
        )
    sources: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        stem, suffix = entry.stem.lower(), entry.suffix.lower()
        if stem in PASSES and suffix in FORMATS and entry.is_file():
            sources.setdefault(stem, []).append(entry)
    if not sources:
        raise InputError(
            "holds no customers, contacts or onboardings file (.csv or .parquet).",
            path=label,
            remedy="Name the files customers.csv, contacts.csv, onboardings.csv "
            "(or .parquet), or pass them with --customers, --contacts or --onboardings.",
        )
    return sources


def _format_of(path: Path) -> str:
    from bulk.importing.errors_input import FORMAT, is_errors_file

    if is_errors_file(path):
        return FORMAT  # given for one pass: that pass's rows only
    return "parquet" if path.suffix.lower() == ".parquet" else "csv"


# -- reading ---------------------------------------------------------------------------------


class Source(ABC):
    """An opened source file: its header, its size, and its records in batches.

    Close it (or use it as a context manager) to delete the temporary file a transcoded CSV
    leaves behind; a forgotten one is deleted when the object is collected.
    """

    def __init__(self, source: SourceFile, columns: tuple[str, ...]) -> None:
        self.source = source
        self.columns = columns
        self.list_columns: dict[str, str] = {}
        """Columns whose cells are lists (typed sources), and their type: only `tags` and
        `labels` may hold lists, which the planner checks once it knows the mapping."""
        self._row_count: int | None = None

    @property
    def path(self) -> Path:
        return self.source.path

    def row_count(self) -> int:
        """How many records `batches` yields (a full, fast polars scan; cached)."""
        if self._row_count is None:
            self._row_count = self._count_rows()
        return self._row_count

    @abstractmethod
    def _count_rows(self) -> int: ...

    @abstractmethod
    def batches(self, size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[SourceRecord]]:
        """The records in file order, `size` at a time (about: polars decides the chunks).

        Records whose cells are all empty (blank lines, `,,,`) are skipped.
        """

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Release what the source holds (nothing, unless the CSV was transcoded)."""

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_source(source: SourceFile, *, encoding: str | None = None) -> Source:
    """Open a source file for reading, checking everything that can be checked up front.

    `encoding` names the text encoding of a CSV file (default UTF-8; it does not apply to
    Parquet). Raise `InputError` for a file that cannot be read.
    """
    path = source.path
    if not path.exists():
        raise InputError("does not exist.", path=path)
    if not path.is_file():
        raise InputError("is not a file.", path=path)
    if path.stat().st_size == 0:
        raise InputError("is empty.", path=path)
    if source.format == "errors":
        from bulk.importing.errors_input import open_errors_file

        return open_errors_file(source, encoding=encoding)
    if source.format == "parquet":
        return _ParquetSource(source)
    if source.format == "csv":
        return _CsvSource.open(source, encoding)
    raise ValueError(f"unknown format {source.format!r}")


def _non_empty(text: pl.Expr) -> pl.Expr:
    """Empty text becomes null: a quoted `""` is as empty as an unquoted empty cell."""
    return pl.when(text != "").then(text)


def _check_names(columns: Sequence[str], path: Path, line: int | None) -> None:
    seen: set[str] = set()
    for number, name in enumerate(columns, start=1):
        if name == "":
            raise InputError(
                f"column {number} of the header has no name.",
                path=path,
                line=line,
                remedy="Name it, or delete the column.",
            )
        if name != name.strip():
            raise InputError(
                f"column name {name!r} has spaces around it.",
                path=path,
                line=line,
                column=name,
                remedy=f"Rename it {name.strip()!r}.",
            )
        if name in seen:
            raise InputError(
                f"column {name!r} appears twice in the header.",
                path=path,
                line=line,
                column=name,
                remedy="Rename or delete one of them.",
            )
        seen.add(name)


def _records(
    names: tuple[str, ...], lines: Sequence[int], frame: pl.DataFrame
) -> list[SourceRecord]:
    """Records of a batch of text columns, skipping those whose cells are all empty."""
    rows = zip(*(series.to_list() for series in frame.get_columns()), strict=True)
    return [
        SourceRecord(line, dict(zip(names, row, strict=False)))
        for line, row in zip(lines, rows, strict=True)
        if any(row)
    ]


# -- CSV -------------------------------------------------------------------------------------


class _CsvSource(Source):
    def __init__(
        self,
        source: SourceFile,
        columns: tuple[str, ...],
        data_path: Path,
        first_data_line: int,
        has_quotes: bool,
        temporary: Path | None,
    ) -> None:
        super().__init__(source, columns)
        self._data_path = data_path
        self._first_data_line = first_data_line
        self._has_quotes = has_quotes
        self._finalizer = (
            weakref.finalize(self, _unlink, temporary) if temporary is not None else None
        )

    @classmethod
    def open(cls, source: SourceFile, encoding: str | None) -> _CsvSource:
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
            has_quotes = _scan_utf8(data_path, path)
            columns, header_lines = _read_header(data_path, path)
            _check_names(columns, path, header_lines[0])
            polars_names = _polars_header(data_path, path)
            if polars_names != list(columns):
                raise InputError(
                    "the header line cannot be read consistently (blank or odd lines before it?).",
                    path=path,
                    line=header_lines[0],
                    remedy="Make the column names the first line of the file.",
                )
        except BaseException:
            if temporary is not None:
                _unlink(temporary)
            raise
        return cls(source, columns, data_path, header_lines[1] + 1, has_quotes, temporary)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()

    def _scan(self) -> pl.LazyFrame:
        return pl.scan_csv(self._data_path, infer_schema=False, quote_char='"')

    def _count_rows(self) -> int:
        not_blank = pl.any_horizontal(
            [pl.col(name).is_not_null() & (pl.col(name) != "") for name in self.columns]
        )
        try:
            count = self._scan().filter(not_blank).select(pl.len()).collect().item()
        except pl.exceptions.PolarsError as error:
            raise self._diagnose(error) from None
        return int(count)

    def batches(self, size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[SourceRecord]]:
        names = self.columns
        cleaned = [_non_empty(pl.col(name)).alias(name) for name in names]
        newlines = pl.sum_horizontal(
            [pl.col(name).str.count_matches("\n", literal=True).fill_null(0) for name in names]
        ).cast(pl.Int64)
        next_line = self._first_data_line
        for frame in _frames(self._scan().collect_batches(chunk_size=size), self._diagnose):
            height = frame.height
            if height == 0:
                continue
            extra = frame.select(newlines).to_series() if self._has_quotes else None
            lines: Sequence[int]
            if extra is None or not extra.sum():
                lines = range(next_line, next_line + height)
                next_line += height
            else:
                starts = pl.int_range(height, eager=True) + (extra.cum_sum() - extra) + next_line
                lines = starts.to_list()
                next_line += height + int(extra.sum())
            yield _records(names, lines, frame.select(cleaned))

    def _diagnose(self, error: pl.exceptions.PolarsError) -> InputError:
        """Find the record polars choked on with the stdlib parser, to name its line."""
        path = self.path
        width = len(self.columns)
        with _large_csv_fields(), self._data_path.open(encoding="utf-8-sig", newline="") as text:
            reader = csv.reader(text, strict=True)
            start = 1
            try:
                for number, record in enumerate(reader):
                    if number and len(record) > width:
                        return InputError(
                            f"has {len(record)} cells but the header has {width} columns.",
                            path=path,
                            line=start,
                            remedy="Quote cells that contain commas, or add the missing "
                            "column names to the header.",
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


def _scan_utf8(data_path: Path, path: Path) -> bool:
    """One pass over the bytes: NUL bytes and invalid UTF-8 are errors. Is there any quote?"""
    has_quotes = False
    lines = 0
    pending = b""
    with data_path.open("rb") as stream:
        while True:
            chunk = stream.read(_SCAN_CHUNK)
            data = pending + chunk if pending else chunk
            if not chunk:
                if pending:
                    _invalid_utf8(path, lines + 1, pending[0])
                return has_quotes
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
            lines += data.count(b"\n")


def _invalid_utf8(path: Path, line: int, byte: int) -> NoReturn:
    raise InputError(
        f"is not valid UTF-8 (byte 0x{byte:02X}).", path=path, line=line, remedy=_ENCODING_REMEDY
    )


def _read_header(data_path: Path, path: Path) -> tuple[tuple[str, ...], tuple[int, int]]:
    """The raw header and the lines it spans (first, last), skipping leading blank lines."""
    with _large_csv_fields(), data_path.open(encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, strict=True)
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


def _polars_header(data_path: Path, path: Path) -> list[str]:
    try:
        return pl.scan_csv(data_path, infer_schema=False, n_rows=0).collect_schema().names()
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
        names = tuple(schema.names())
        _check_names(names, path, None)
        super().__init__(source, names)
        self._text = [_as_text(name, dtype, path) for name, dtype in schema.items()]
        self.list_columns = {
            name: str(dtype) for name, dtype in schema.items() if isinstance(dtype, pl.List)
        }

    def _count_rows(self) -> int:
        not_blank = pl.any_horizontal([expr.is_not_null() for expr in self._text])
        try:
            count = pl.scan_parquet(self.path).filter(not_blank).select(pl.len()).collect().item()
        except pl.exceptions.PolarsError as error:
            raise _corrupt(self.path, error) from None
        return int(count)

    def batches(self, size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[SourceRecord]]:
        next_line = 2
        frames = pl.scan_parquet(self.path).select(self._text).collect_batches(chunk_size=size)
        for frame in _frames(frames, partial(_corrupt, self.path)):
            height = frame.height
            yield _records(self.columns, range(next_line, next_line + height), frame)
            next_line += height


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
    column = pl.col(name)
    text: pl.Expr
    if (
        dtype == pl.String
        or dtype.is_integer()
        or isinstance(dtype, pl.Categorical | pl.Enum | pl.Decimal)
    ):
        text = column.cast(pl.String)
    elif dtype.is_float():
        integral = column.is_finite() & (column == column.floor()) & (column.abs() < 2.0**53)
        text = (
            pl.when(column.is_nan())
            .then(None)
            .when(integral)
            .then(column.cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(column.cast(pl.String))
        )
    elif dtype == pl.Boolean:
        text = pl.when(column).then(pl.lit("true")).otherwise(pl.lit("false"))
        text = pl.when(column.is_null()).then(None).otherwise(text)
    elif isinstance(dtype, pl.Datetime):
        utc = column.dt.convert_time_zone("UTC") if dtype.time_zone else column
        text = utc.dt.strftime(TIMESTAMP_FORMAT)
    elif dtype == pl.Date:
        text = column.dt.strftime("%Y-%m-%d")
    elif isinstance(dtype, pl.List) and dtype.inner in (pl.String, pl.Null):
        encoded = pl.struct(column.alias("v")).struct.json_encode()
        text = encoded.str.strip_prefix('{"v":').str.strip_suffix("}")
        text = pl.when(column.is_null()).then(None).otherwise(text)
    elif dtype == pl.Null:
        text = pl.lit(None, dtype=pl.String)
    else:
        raise InputError(
            f"has type {dtype}, which cannot be read as text.",
            path=path,
            column=name,
            remedy="Convert the column to text, numbers, booleans, dates or lists of text.",
        )
    return _non_empty(text.cast(pl.String)).alias(name)
