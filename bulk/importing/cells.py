"""Tolerant parsing of source cells (`str` → API value, or a `CellError`), one kind at a time.

The client-side mirror of `bulk.sandbox.validation`: the sandbox checks request bodies strictly,
as the API does; this module reads spreadsheet cells tolerantly, because spreadsheets spell
values loosely. `yes`/`No`/`1` are booleans, `At Risk` is the enum value `at_risk`, a date is a
midnight-UTC datetime, a list is `a;b;c` or a JSON array, and whitespace around a typed value is
dropped (plain strings are kept as given). It is never lenient about meaning: a value that
cannot be mapped to exactly one API value is a `CellError` with the API's own error code and a
sentence naming the column and the value.

Enums are the one place the client trusts the API over its copy of the docs: a newer API has
values the docs do not list (`paused_billing`), and its export must import back. A value in the
API's own spelling (lowercase words joined by `_`) that is not documented is passed through as
it is, for the API to accept or refuse (the planner warns about it once per column). A value
not even spelled so that folds to no documented one (`Actve!!`, `Paused Billing`) is a typo no
API version holds, and stays invalid.

A parser is built once per field and column (`cell_parser`), so the per-cell work is one call.

Typed sources (Parquet columns, spreadsheet cells) are first turned into that text by one rule,
`typed_text`, so a typed cell means what the same text would mean in a CSV file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Final

import polars as pl

from bulk.schema import (
    SLUG_PATTERN,
    TIMESTAMP_FORMAT,
    Field,
    Kind,
    format_timestamp,
    parse_timestamp,
)

_TRUE: Final = frozenset({"true", "yes", "1"})
_FALSE: Final = frozenset({"false", "no", "0"})
_INTEGER = re.compile(r"-?[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_SHOWN_LENGTH = 60
_SPREADSHEET_DAY_ZERO = date(1899, 12, 31)
"""Serial day 0 of Excel's calendar: a cell holding only a time of day is on it."""


class CellError(Exception):
    """A cell (or a row's combination of cells) that maps to no single API value."""

    def __init__(self, column: str | None, code: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.code = code
        self.message = message


class Unset:
    """What a typed parser returns for a cell holding only whitespace: not set."""


UNSET: Final = Unset()

Parser = Callable[[str], Any]
"""A cell's text → its API value, `UNSET`, or a raised `CellError`."""


def cell_parser(field: Field, column: str) -> Parser | None:
    """The parser for `field` read from `column`; None when the text is taken as it is."""
    return _PARSERS[field.kind](field, column)


def show(value: str) -> str:
    """A value quoted for a message, cut short when long (repr keeps it on one line)."""
    if len(value) > _SHOWN_LENGTH:
        value = value[: _SHOWN_LENGTH - 1] + "…"
    return repr(value)


def _check_length(field: Field, column: str, text: str) -> None:
    if field.maximum is not None and len(text) > field.maximum:
        raise CellError(
            column,
            "too_big",
            f"{column} {show(text)} is {len(text)} characters long, "
            f"more than the {field.maximum} allowed",
        )
    if field.minimum is not None and len(text) < field.minimum:
        raise CellError(
            column,
            "too_small",
            f"{column} {show(text)} is {len(text)} characters long, "
            f"less than the {field.minimum} required",
        )


def _string(field: Field, column: str) -> Parser | None:
    if field.maximum is None and field.minimum is None:
        return None  # taken as is: the fast path for most columns

    def parse(value: str) -> Any:
        _check_length(field, column, value)
        return value

    return parse


def _integer(field: Field, column: str) -> Parser:
    minimum, maximum = field.minimum, field.maximum

    def parse(value: str) -> Any:
        text = value.strip()
        if not text:
            return UNSET
        if not _INTEGER.fullmatch(text):
            raise CellError(column, "invalid_type", f"{column} {show(value)} is not a whole number")
        number = int(text)
        if minimum is not None and number < minimum:
            raise CellError(
                column, "too_small", f"{column} {show(value)} is less than the minimum {minimum}"
            )
        if maximum is not None and number > maximum:
            raise CellError(
                column, "too_big", f"{column} {show(value)} is more than the maximum {maximum}"
            )
        return number

    return parse


def _boolean(field: Field, column: str) -> Parser:
    def parse(value: str) -> Any:
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        if not text:
            return UNSET
        raise CellError(
            column,
            "invalid_type",
            f"{column} {show(value)} is not a boolean (use true/false, yes/no or 1/0)",
        )

    return parse


def _datetime(field: Field, column: str) -> Parser:
    def parse(value: str) -> Any:
        text = value.strip()
        if not text:
            return UNSET
        try:
            if _DATE.fullmatch(text):
                moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            else:
                moment = parse_timestamp(text, assume_utc=True)
            return format_timestamp(moment)
        except (ValueError, OverflowError):
            if _NUMBER.fullmatch(text):
                raise CellError(
                    column,
                    "invalid_string",
                    f"{column} {show(value)} is a number, not a date: a spreadsheet stores a date "
                    "as a number when its cell has no date format; format the column as a date "
                    "(or write the dates as 2026-03-15)",
                ) from None
            raise CellError(
                column,
                "invalid_string",
                f"{column} {show(value)} is not an ISO 8601 date or datetime "
                "(like 2026-03-15 or 2026-03-15T09:30:00Z)",
            ) from None

    return parse


_API_ENUM_SPELLING = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
"""How the API spells its enum values (`at_risk`): a value spelled so that is not documented
may be a newer API's (`paused_billing`) and passes through; anything else is a typo."""


def _enum(field: Field, column: str) -> Parser:
    spellings = {choice: choice for choice in field.choices}
    listed = ", ".join(field.choices)

    def parse(value: str) -> Any:
        text = value.strip()
        choice = spellings.get(text)
        if choice is not None:
            return choice
        if not text:
            return UNSET
        choice = spellings.get(text.lower().replace(" ", "_").replace("-", "_"))
        if choice is not None:
            return choice
        if _API_ENUM_SPELLING.fullmatch(text):
            return text  # undocumented: the API decides (the planner warns about it)
        raise CellError(
            column,
            "invalid_enum_value",
            f"{column} {show(value)} is not one of {listed} (an undocumented value is sent "
            "only in the API's own spelling: lowercase words joined by _)",
        )

    return parse


def _patterned(pattern: re.Pattern[str], what: str) -> Callable[[Field, str], Parser]:
    """Parsers of trimmed text that must match `pattern`; `what` ends the complaint."""

    def build(field: Field, column: str) -> Parser:
        def parse(value: str) -> Any:
            text = value.strip()
            if not text:
                return UNSET
            _check_length(field, column, text)
            if not pattern.match(text):
                raise CellError(column, "invalid_string", f"{column} {show(value)} is not {what}")
            return text

        return parse

    return build


_PLAINLY_AN_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
"""One `@` between two non-empty parts, no spaces: all the client checks, since the API does not
document its own rule (it answers `invalid_string` for what it refuses)."""
_email = _patterned(_PLAINLY_AN_EMAIL, "an email address")
_slug = _patterned(
    SLUG_PATTERN,
    "a slug (lowercase letters and digits, in words joined by single hyphens); "
    "leave it empty to derive one from the name",
)


def _string_list(field: Field, column: str) -> Parser:
    def parse(value: str) -> Any:
        text = value.strip()
        if text.startswith("["):
            items = _json(column, value)
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise CellError(
                    column, "invalid_type", f"{column} {show(value)} is not a list of strings"
                )
            return items
        return [item for item in (part.strip() for part in text.split(";")) if item]

    return parse


def _json_object(field: Field, column: str) -> Parser:
    def parse(value: str) -> Any:
        if not value.strip():
            return UNSET
        parsed = _json(column, value)
        if not isinstance(parsed, dict):
            raise CellError(
                column,
                "invalid_type",
                f"{column} {show(value)} is a JSON {_json_type(parsed)}, not an object",
            )
        return parsed

    return parse


def _json(column: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise CellError(
            column, "invalid_json", f"{column} {show(value)} is not valid JSON: {error}"
        ) from None


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


_PARSERS: Final[dict[Kind, Callable[[Field, str], Parser | None]]] = {
    Kind.STRING: _string,
    Kind.INTEGER: _integer,
    Kind.BOOLEAN: _boolean,
    Kind.DATETIME: _datetime,
    Kind.ENUM: _enum,
    Kind.EMAIL: _email,
    Kind.SLUG: _slug,
    Kind.STRING_LIST: _string_list,
    Kind.JSON_OBJECT: _json_object,
}
"""How a cell becomes a value of each kind (`Kind.REFERENCE`, the parent, is not a cell field)."""


# -- typed cells ---------------------------------------------------------------------------


def typed_text(name: str, dtype: pl.DataType, *, spreadsheet: bool = False) -> pl.Expr | None:
    """Column `name` of type `dtype` as text cells by SPEC's one rule; None for a type no text
    can stand for (the caller names the file and column).

    Integers and whole floats without a decimal point (`123`, not `123.0`), other floats in
    shortest round-trip form, booleans `true`/`false`, dates `YYYY-MM-DD`, datetimes ISO 8601
    (UTC when naive), lists of strings as JSON arrays. `spreadsheet` is for spreadsheet cells,
    which have no date or time type: a date there is a datetime at midnight and reads as the
    date, a time of day is a datetime on day 0 (1899-12-31) and reads as `HH:MM:SS`.
    """
    column = pl.col(name)
    text: pl.Expr
    if (
        dtype == pl.String
        or dtype.is_integer()
        or isinstance(dtype, pl.Categorical | pl.Enum | pl.Decimal)
    ):
        text = column.cast(pl.String)
    elif dtype.is_float():
        text = _float_text(column)
    elif dtype == pl.Boolean:
        text = pl.when(column).then(pl.lit("true")).otherwise(pl.lit("false"))
        text = pl.when(column.is_null()).then(None).otherwise(text)
    elif isinstance(dtype, pl.Datetime):
        utc = column.dt.convert_time_zone("UTC") if dtype.time_zone else column
        text = utc.dt.strftime(TIMESTAMP_FORMAT)
        if spreadsheet:
            text = (
                pl.when(utc.dt.date() == _SPREADSHEET_DAY_ZERO)
                .then(utc.dt.strftime("%H:%M:%S"))
                .when(utc.dt.time() == datetime.min.time())
                .then(utc.dt.strftime("%Y-%m-%d"))
                .otherwise(text)
            )
    elif dtype == pl.Date:
        text = column.dt.strftime("%Y-%m-%d")
    elif isinstance(dtype, pl.Duration):
        text = _duration_text(column)
    elif isinstance(dtype, pl.List) and dtype.inner in (pl.String, pl.Null):
        encoded = pl.struct(column.alias("v")).struct.json_encode()
        text = encoded.str.strip_prefix('{"v":').str.strip_suffix("}")
        text = pl.when(column.is_null()).then(None).otherwise(text)
    elif dtype == pl.Null:
        text = pl.lit(None, dtype=pl.String)
    else:
        return None
    return text.cast(pl.String)


def _float_text(column: pl.Expr) -> pl.Expr:
    """Whole numbers without `.0` (exactly, below 2**53), others as polars writes them:
    the shortest text that reads back as the same float. NaN is no value."""
    integral = column.is_finite() & (column == column.floor()) & (column.abs() < 2.0**53)
    return (
        pl.when(column.is_nan())
        .then(None)
        .when(integral)
        .then(column.cast(pl.Int64, strict=False).cast(pl.String))
        .otherwise(column.cast(pl.String))
    )


def _duration_text(column: pl.Expr) -> pl.Expr:
    """A time of day or a duration (a spreadsheet's `9:30`) as `HH:MM:SS`."""
    seconds = column.dt.total_seconds(fractional=False)
    parts = [seconds // 3600, seconds // 60 % 60, seconds % 60]
    padded = [part.cast(pl.String).str.zfill(2) for part in parts]
    return pl.format("{}:{}:{}", *padded)
