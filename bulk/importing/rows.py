"""Turning source records into API payloads, one pass at a time.

Spreadsheets spell values loosely, so parsing is tolerant: `yes`/`No`/`1` are booleans,
`At Risk` is the enum value `at_risk`, a date is a midnight-UTC datetime, a list is `a;b;c` or a
JSON array, and whitespace around a typed value is dropped (plain strings are kept as given). It
is never lenient about meaning: a value that cannot be mapped to exactly one API value is a
`RowProblem` with the API's own error code and a sentence naming the column and the value.

The field → parser table is built from `bulk.schema` once per source (`RowPlanner`), so the
per-row work is a dictionary lookup and one call per set cell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from bulk.errors import InputError
from bulk.importing.sources import SourceRecord
from bulk.schema import (
    CONTACT,
    CUSTOMER,
    EMAIL_PATTERN,
    ONBOARDING,
    SLUG_PATTERN,
    Field,
    Kind,
    ObjectSchema,
    canonical_json,
    derive_slug,
    format_timestamp,
    parse_timestamp,
    text_digest,
)

PASS_SCHEMAS: Final = {"customers": CUSTOMER, "contacts": CONTACT, "onboardings": ONBOARDING}
READ_ONLY_COLUMNS: Final = frozenset(
    {"id", "display_id", "created_at", "updated_at", "livemode", "started_at", "completed_at"}
)
KEY_COLUMNS: Final = ("external_id", "customer_external_id", "customer_id")
"""Columns that say which row this is, or which customer it belongs to: never payload fields."""
METADATA_PREFIX: Final = "metadata."

_TRUE: Final = frozenset({"true", "yes", "1"})
_FALSE: Final = frozenset({"false", "no", "0"})
_INTEGER = re.compile(r"-?[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SHOWN_LENGTH = 60
_NON_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """A valid row: its identity and the JSON body to send for it."""

    pass_name: str
    line: int
    key: str
    """The row's identity across runs: customers' external_id; for children the given
    external_id, else the default (see `RowPlanner.plan`)."""
    customer_key: str | None
    """Children: the `customer_external_id` cell (a customer of this source or checkpoint)."""
    customer_ref: str | None
    """Children: the `customer_id` cell (an existing Pivotal id or display_id)."""
    payload: dict[str, Any]
    """Only the set cells, typed; children's payloads leave `customer_id` to the importer."""
    cells: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class RowProblem:
    """An invalid row: the first problem found, with the API's error code."""

    pass_name: str
    line: int
    column: str | None
    code: str
    message: str
    """A sentence naming the column and the value, e.g. `email 'bob@' is not an email address`."""
    cells: dict[str, str | None]


def payload_hash(payload: Mapping[str, Any]) -> str:
    """The sha256 of a payload's canonical JSON (sorted keys, compact, UTF-8)."""
    return text_digest(canonical_json(payload))


# -- cell parsers ----------------------------------------------------------------------------


class _CellError(Exception):
    def __init__(self, column: str | None, code: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.code = code
        self.message = message


class _Unset:
    """What a typed parser returns for a cell holding only whitespace: not set."""


_UNSET: Final = _Unset()

Parser = Callable[[str], Any]


def _show(value: str) -> str:
    """A value quoted for a message, cut short when long (repr keeps it on one line)."""
    if len(value) > _SHOWN_LENGTH:
        value = value[: _SHOWN_LENGTH - 1] + "…"
    return repr(value)


def _length_checks(field: Field, column: str, text: str) -> None:
    if field.maximum is not None and len(text) > field.maximum:
        raise _CellError(
            column,
            "too_big",
            f"{column} {_show(text)} is {len(text)} characters long, "
            f"more than the {field.maximum} allowed",
        )
    if field.minimum is not None and len(text) < field.minimum:
        raise _CellError(
            column,
            "too_small",
            f"{column} {_show(text)} is {len(text)} characters long, "
            f"less than the {field.minimum} required",
        )


def _string_parser(field: Field, column: str) -> Parser | None:
    if field.maximum is None and field.minimum is None:
        return None  # taken as is: the fast path for most columns

    def parse(value: str) -> Any:
        _length_checks(field, column, value)
        return value

    return parse


def _integer_parser(field: Field, column: str) -> Parser:
    minimum, maximum = field.minimum, field.maximum

    def parse(value: str) -> Any:
        text = value.strip()
        if not text:
            return _UNSET
        if not _INTEGER.fullmatch(text):
            raise _CellError(
                column, "invalid_type", f"{column} {_show(value)} is not a whole number"
            )
        number = int(text)
        if minimum is not None and number < minimum:
            raise _CellError(
                column, "too_small", f"{column} {_show(value)} is less than the minimum {minimum}"
            )
        if maximum is not None and number > maximum:
            raise _CellError(
                column, "too_big", f"{column} {_show(value)} is more than the maximum {maximum}"
            )
        return number

    return parse


def _boolean_parser(field: Field, column: str) -> Parser:
    def parse(value: str) -> Any:
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        if not text:
            return _UNSET
        raise _CellError(
            column,
            "invalid_type",
            f"{column} {_show(value)} is not a boolean (use true/false, yes/no or 1/0)",
        )

    return parse


def _datetime_parser(field: Field, column: str) -> Parser:
    def parse(value: str) -> Any:
        text = value.strip()
        if not text:
            return _UNSET
        try:
            if _DATE.fullmatch(text):
                moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            else:
                moment = parse_timestamp(text, assume_utc=True)
            return format_timestamp(moment)
        except (ValueError, OverflowError):
            raise _CellError(
                column,
                "invalid_string",
                f"{column} {_show(value)} is not an ISO 8601 date or datetime "
                "(like 2026-03-15 or 2026-03-15T09:30:00Z)",
            ) from None

    return parse


def _enum_parser(field: Field, column: str) -> Parser:
    spellings = {choice: choice for choice in field.choices}
    listed = ", ".join(field.choices)

    def parse(value: str) -> Any:
        text = value.strip()
        choice = spellings.get(text)
        if choice is not None:
            return choice
        if not text:
            return _UNSET
        choice = spellings.get(text.lower().replace(" ", "_").replace("-", "_"))
        if choice is not None:
            return choice
        raise _CellError(
            column, "invalid_enum_value", f"{column} {_show(value)} is not one of {listed}"
        )

    return parse


def _email_parser(field: Field, column: str) -> Parser:
    def parse(value: str) -> Any:
        text = value.strip()
        if not text:
            return _UNSET
        _length_checks(field, column, text)
        if not EMAIL_PATTERN.match(text):
            raise _CellError(
                column, "invalid_string", f"{column} {_show(value)} is not an email address"
            )
        return text

    return parse


def _slug_parser(field: Field, column: str) -> Parser:
    def parse(value: str) -> Any:
        text = value.strip()
        if not text:
            return _UNSET
        _length_checks(field, column, text)
        if not SLUG_PATTERN.match(text):
            raise _CellError(
                column,
                "invalid_string",
                f"{column} {_show(value)} is not a slug (lowercase letters and digits, "
                "in words joined by single hyphens); leave it empty to derive one from the name",
            )
        return text

    return parse


def _string_list_parser(field: Field, column: str) -> Parser:
    def parse(value: str) -> Any:
        text = value.strip()
        if text.startswith("["):
            items = _json(column, value)
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise _CellError(
                    column, "invalid_type", f"{column} {_show(value)} is not a list of strings"
                )
            return items
        return [item for item in (part.strip() for part in text.split(";")) if item]

    return parse


def _json_object_parser(field: Field, column: str) -> Parser:
    def parse(value: str) -> Any:
        if not value.strip():
            return _UNSET
        parsed = _json(column, value)
        if not isinstance(parsed, dict):
            raise _CellError(
                column,
                "invalid_type",
                f"{column} {_show(value)} is a JSON {_json_type(parsed)}, not an object",
            )
        return parsed

    return parse


def _json(column: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise _CellError(
            column, "invalid_json", f"{column} {_show(value)} is not valid JSON: {error}"
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
    Kind.STRING: _string_parser,
    Kind.INTEGER: _integer_parser,
    Kind.BOOLEAN: _boolean_parser,
    Kind.DATETIME: _datetime_parser,
    Kind.ENUM: _enum_parser,
    Kind.EMAIL: _email_parser,
    Kind.SLUG: _slug_parser,
    Kind.STRING_LIST: _string_list_parser,
    Kind.JSON_OBJECT: _json_object_parser,
}
"""How a cell becomes a value of each kind (`Kind.REFERENCE`, the parent, is not a cell field)."""


# -- the planner -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cell:
    field: str
    column: str
    parse: Parser | None
    required: bool


def payload_fields(schema: ObjectSchema) -> tuple[Field, ...]:
    """The fields a source row can set: the writable ones but the parent reference."""
    return tuple(field for field in schema.writable() if field.kind is not Kind.REFERENCE)


def mappable_fields() -> frozenset[str]:
    """Every field name `--map FIELD=COLUMN` accepts, across all passes (plus metadata.<key>)."""
    names = {field.name for schema in PASS_SCHEMAS.values() for field in payload_fields(schema)}
    return frozenset(names | set(KEY_COLUMNS))


class RowPlanner:
    """Checks a source's columns once, then turns each of its records into a row or a problem.

    `mapping` is `--map FIELD=COLUMN`: read FIELD from COLUMN. It is shared by all passes, so a
    mapped column this source does not have falls back to the field's own column, and a field
    this pass does not have is ignored. `path` only improves the messages.
    """

    def __init__(
        self,
        pass_name: str,
        columns: Sequence[str],
        mapping: Mapping[str, str] | None = None,
        *,
        path: Path | None = None,
    ) -> None:
        if pass_name not in PASS_SCHEMAS:
            raise ValueError(f"unknown pass {pass_name!r}")
        mapping = dict(mapping or {})
        _check_mapping(mapping)
        self.pass_name = pass_name
        self.schema = PASS_SCHEMAS[pass_name]
        self.columns = tuple(columns)
        self.path = path
        self._mapping = mapping
        present = set(self.columns)

        fields = payload_fields(self.schema)
        self.field_columns: dict[str, str] = {}
        """Field (or key column) name → the column it is read from, for those present."""
        for name in (*KEY_COLUMNS, *(field.name for field in fields)):
            column = self._column_for(name, present)
            if column is not None:
                self.field_columns[name] = column

        self._is_customer = pass_name == "customers"
        self._check_required(fields)
        self._cells = tuple(
            _Cell(
                field.name,
                self.field_columns[field.name],
                _PARSERS[field.kind](field, self.field_columns[field.name]),
                field.required,
            )
            for field in fields
            if field.name in self.field_columns and field.kind is not Kind.JSON_OBJECT
        )
        self._has_metadata = any(field.kind is Kind.JSON_OBJECT for field in fields)
        metadata_column = self.field_columns.get("metadata") if self._has_metadata else None
        self._metadata_parse = (
            _json_object_parser(self.schema.field("metadata"), metadata_column)
            if metadata_column
            else None
        )
        self._metadata_column = metadata_column
        self._metadata_keys = self._metadata_columns(present) if self._has_metadata else ()
        self._external_id = self.field_columns.get("external_id")
        self._customer_key = self.field_columns.get("customer_external_id")
        self._customer_ref = self.field_columns.get("customer_id")
        self._name = self.field_columns.get("name")
        self._email = self.field_columns.get("email")

        used = set(self.field_columns.values()) | {column for _, column in self._metadata_keys}
        known = used | READ_ONLY_COLUMNS | set(KEY_COLUMNS) | {field.name for field in fields}
        self.unknown_columns: tuple[str, ...] = tuple(
            column
            for column in self.columns
            if column not in known
            and not (self._has_metadata and column.startswith(METADATA_PREFIX))
        )
        """Columns read by nothing, for one warning (read-only columns are ignored silently)."""

    @property
    def warning(self) -> str | None:
        """The one warning about unknown columns, or None."""
        if not self.unknown_columns:
            return None
        where = f"{self.path.name}: " if self.path is not None else f"{self.pass_name}: "
        names = ", ".join(repr(column) for column in self.unknown_columns)
        plural = "s" if len(self.unknown_columns) > 1 else ""
        return f"{where}ignoring unknown column{plural} {names}."

    def plan(self, record: SourceRecord) -> PlannedRow | RowProblem:
        """The row to send for a record, or the first problem it has."""
        cells = record.cells
        try:
            return self._plan(record.line, cells)
        except _CellError as error:
            return RowProblem(
                self.pass_name, record.line, error.column, error.code, error.message, cells
            )

    def _plan(self, line: int, cells: dict[str, str | None]) -> PlannedRow:
        customer_key: str | None = None
        customer_ref: str | None = None
        external_id = cells.get(self._external_id) if self._external_id else None
        if self._is_customer:
            if external_id is None:
                raise self._missing("external_id")
        else:
            customer_key, customer_ref = self._customer(cells)

        payload: dict[str, Any] = {}
        for cell in self._cells:
            value = cells.get(cell.column)
            if value is not None:
                if cell.parse is None:
                    payload[cell.field] = value
                    continue
                parsed = cell.parse(value)
                if parsed is not _UNSET:
                    payload[cell.field] = parsed
                    continue
            if cell.required:
                raise self._missing(cell.field)

        if self._has_metadata:
            metadata = self._metadata(cells, external_id)
            if metadata is not None:
                payload["metadata"] = metadata
        if self._is_customer and "slug" not in payload:
            payload["slug"] = self._derived_slug(payload["name"])

        key: str | None = external_id  # always set for customers
        if key is None:
            parent = customer_key or customer_ref
            key = f"{parent}/{payload['email'].lower()}" if self._email is not None else parent
        assert key is not None
        return PlannedRow(self.pass_name, line, key, customer_key, customer_ref, payload, cells)

    # -- per-row pieces

    def _customer(self, cells: Mapping[str, str | None]) -> tuple[str | None, str | None]:
        key = cells.get(self._customer_key) if self._customer_key else None
        ref = cells.get(self._customer_ref) if self._customer_ref else None
        if key is not None and ref is not None:
            raise _CellError(
                self._customer_ref,
                "invalid_type",
                f"{self._customer_key} {_show(key)} and {self._customer_ref} {_show(ref)} are "
                "both set; keep only one of them",
            )
        if key is None and ref is None:
            present = [column for column in (self._customer_key, self._customer_ref) if column]
            if len(present) == 2:
                raise _CellError(
                    present[0],
                    "missing_field",
                    f"{present[0]} and {present[1]} are both empty; set one of them",
                )
            raise self._missing("customer_external_id" if self._customer_key else "customer_id")
        return key, ref

    def _metadata(
        self, cells: Mapping[str, str | None], external_id: str | None
    ) -> dict[str, Any] | None:
        metadata: dict[str, Any] | None = None
        if self._metadata_column is not None and self._metadata_parse is not None:
            value = cells.get(self._metadata_column)
            if value is not None:
                parsed = self._metadata_parse(value)
                if parsed is not _UNSET:
                    metadata = parsed
        for key, column in self._metadata_keys:
            value = cells.get(column)
            if value is not None:
                if metadata is None:
                    metadata = {}
                metadata[key] = value
        if self._is_customer:
            if metadata is None:
                metadata = {}
            metadata["external_id"] = external_id
        return metadata

    def _derived_slug(self, name: str) -> str:
        slug = derive_slug(name)
        if not slug:
            raise _CellError(
                self.field_columns.get("slug", "slug"),
                "missing_field",
                f"slug is empty and none can be derived from {self._name} {_show(name)}; "
                "set one in a slug column",
            )
        return slug

    def _missing(self, field: str) -> _CellError:
        column = self.field_columns.get(field, field)
        return _CellError(column, "missing_field", f"{column} is required but empty")

    # -- construction

    def _column_for(self, name: str, present: set[str]) -> str | None:
        mapped = self._mapping.get(name)
        if mapped is not None and mapped in present:
            return mapped
        return name if name in present else None

    def _metadata_columns(self, present: set[str]) -> tuple[tuple[str, str], ...]:
        """(key, column) for every `metadata.<key>` column; a --map for the key wins."""
        keys: dict[str, str] = {}
        for column in self.columns:
            if column.startswith(METADATA_PREFIX) and len(column) > len(METADATA_PREFIX):
                keys[column[len(METADATA_PREFIX) :]] = column
        for field, column in self._mapping.items():
            if field.startswith(METADATA_PREFIX) and column in present:
                keys[field[len(METADATA_PREFIX) :]] = column
        return tuple(keys.items())

    def _check_required(self, fields: Sequence[Field]) -> None:
        required = ["external_id"] if self._is_customer else []
        required += [field.name for field in fields if field.required]
        for name in required:
            if name not in self.field_columns:
                raise self._missing_column(name)
        if not self._is_customer and not (
            "customer_external_id" in self.field_columns or "customer_id" in self.field_columns
        ):
            raise InputError(
                self._subject(
                    "has neither a 'customer_external_id' nor a 'customer_id' column, and "
                    f"{self.pass_name} need one of them."
                ),
                path=self.path,
                remedy=self._map_remedy("customer_external_id"),
            )

    def _missing_column(self, name: str) -> InputError:
        mapped = self._mapping.get(name)
        if mapped is not None:
            message = (
                f"has no column {mapped!r} (from --map {name}={mapped}) nor {name!r}, "
                f"and {self.pass_name} need {name}."
            )
        else:
            message = f"has no {name!r} column, and {self.pass_name} need one."
        return InputError(self._subject(message), path=self.path, remedy=self._map_remedy(name))

    def _subject(self, message: str) -> str:
        """Messages start with a verb after the file name; without one, name the source."""
        return message if self.path is not None else f"The {self.pass_name} source {message}"

    def _map_remedy(self, name: str) -> str:
        similar = [column for column in self.columns if _normalised(column) == name]
        if similar:
            return f"Read it from column {similar[0]!r} with --map {name}={similar[0]}."
        return f"Add the column, or read {name} from another column with --map {name}=COLUMN."


def _normalised(column: str) -> str:
    return re.sub(r"[\s\-]+", "_", column.strip().lower())


def _check_mapping(mapping: Mapping[str, str]) -> None:
    known = mappable_fields()
    for field, column in mapping.items():
        if field in known or (field.startswith(METADATA_PREFIX) and field != METADATA_PREFIX):
            continue
        raise InputError(
            f"--map {field}={column}: there is no field {field!r}.",
            remedy="Map one of " + ", ".join(sorted(known)) + ", or metadata.<key>.",
        )
