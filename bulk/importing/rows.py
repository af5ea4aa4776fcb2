"""Turning source records into API payloads, one pass at a time.

The columns are resolved once per source (`ColumnMap`: which column each field is read from,
given the header and `--map`); each cell is then parsed by `bulk.importing.cells`, so the
per-row work is a dictionary lookup and one call per set cell. A record becomes a `PlannedRow`
(its identity and payload) or a `RowProblem` (the first problem it has).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bulk.errors import InputError
from bulk.importing.cells import UNSET, CellError, Parser, cell_parser
from bulk.importing.sources import SourceRecord
from bulk.schema import (
    COLLECTIONS,
    CUSTOMER,
    SLUG_MAX_LENGTH,
    Field,
    Kind,
    ObjectSchema,
    canonical_json,
    text_digest,
)

_NON_SLUG = re.compile(r"[^a-z0-9]+")
READ_ONLY_COLUMNS: Final = frozenset(
    {"id", "display_id", "created_at", "updated_at", "livemode", "started_at", "completed_at"}
)
KEY_COLUMNS: Final = ("external_id", "customer_external_id", "customer_id")
"""Columns that say which row this is, or which customer it belongs to: never payload fields."""
METADATA_PREFIX: Final = "metadata."


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
    slug: str | None = None
    """Customers: the given slug, or the one the API's documented rule predicts from the name.
    Never sent (the API derives its own): it only flags customers of one source that would
    collide."""


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


def predicted_slug(name: str) -> str:
    """The slug pivotal-api.md says the API derives from a name: lowercased, every run of
    characters other than ASCII a-z0-9 (accented letters included) a `-`, trimmed, cut to 64.

    A prediction, never sent: the real derivation is not published, so the API derives the
    slug itself; this only tells which customers of one source would get the same one.
    """
    slug = _NON_SLUG.sub("-", name.lower()).strip("-")
    return slug[:SLUG_MAX_LENGTH].rstrip("-")


def payload_fields(schema: ObjectSchema) -> tuple[Field, ...]:
    """The fields a source row can set: the writable ones but the parent reference."""
    return tuple(field for field in schema.writable() if field.kind is not Kind.REFERENCE)


def mappable_fields() -> frozenset[str]:
    """Every field name `--map FIELD=COLUMN` accepts, across all passes (plus metadata.<key>)."""
    names = {field.name for schema in COLLECTIONS.values() for field in payload_fields(schema)}
    return frozenset(names | set(KEY_COLUMNS))


# -- columns ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Where one pass reads each field from, resolved once from a header and `--map`.

    `--map` is shared by all passes, so a mapped column this source does not have falls back to
    the field's own column, and a field this pass does not have is ignored.
    """

    schema: ObjectSchema
    header: tuple[str, ...]
    mapping: Mapping[str, str]
    path: Path | None
    """Only improves the messages."""
    fields: dict[str, str]
    """Field (or key column) name → the column it is read from, for those present."""
    metadata_keys: tuple[tuple[str, str], ...]
    """(key, column) for every `metadata.<key>` column; a --map for the key wins."""
    unknown: tuple[str, ...]
    """Columns read by nothing, for one warning (read-only columns are ignored silently)."""

    @classmethod
    def build(
        cls,
        schema: ObjectSchema,
        header: Sequence[str],
        mapping: Mapping[str, str],
        path: Path | None = None,
    ) -> ColumnMap:
        """Resolve every field's column; an unusable `--map` or a missing column is an error."""
        _check_mapping(mapping)
        header = tuple(header)
        present = set(header)
        fields = payload_fields(schema)
        resolved = {
            name: column
            for name in (*KEY_COLUMNS, *(field.name for field in fields))
            if (column := _column_for(name, mapping, present)) is not None
        }
        has_metadata = _has_metadata(schema)
        metadata_keys = _metadata_columns(header, mapping) if has_metadata else ()
        used = set(resolved.values()) | {column for _, column in metadata_keys}
        known = used | READ_ONLY_COLUMNS | set(KEY_COLUMNS) | {field.name for field in fields}
        unknown = tuple(
            column
            for column in header
            if column not in known and not (has_metadata and column.startswith(METADATA_PREFIX))
        )
        columns = cls(schema, header, mapping, path, resolved, metadata_keys, unknown)
        columns._check_required(fields)
        return columns

    def get(self, name: str) -> str | None:
        """The column `name` is read from, or None when the source has none."""
        return self.fields.get(name)

    def shown(self, name: str) -> str:
        """The column a message about `name` should name: its own, else the field's."""
        return self.fields.get(name, name)

    @property
    def warning(self) -> str | None:
        """The one warning about unknown columns, or None."""
        if not self.unknown:
            return None
        where = f"{self.path.name}: " if self.path is not None else f"{self.schema.collection}: "
        names = ", ".join(repr(column) for column in self.unknown)
        plural = "s" if len(self.unknown) > 1 else ""
        return f"{where}ignoring unknown column{plural} {names}."

    def _check_required(self, fields: Sequence[Field]) -> None:
        is_customer = self.schema is CUSTOMER
        required = ["external_id"] if is_customer else []
        required += [field.name for field in fields if field.required]
        for name in required:
            if name not in self.fields:
                raise self._missing_column(name)
        if not is_customer and not (
            "customer_external_id" in self.fields or "customer_id" in self.fields
        ):
            raise InputError(
                self._subject(
                    "has neither a 'customer_external_id' nor a 'customer_id' column, and "
                    f"{self.schema.collection} need one of them."
                ),
                path=self.path,
                remedy=self._map_remedy("customer_external_id"),
            )

    def _missing_column(self, name: str) -> InputError:
        mapped = self.mapping.get(name)
        collection = self.schema.collection
        if mapped is not None:
            message = (
                f"has no column {mapped!r} (from --map {name}={mapped}) nor {name!r}, "
                f"and {collection} need {name}."
            )
        else:
            message = f"has no {name!r} column, and {collection} need one."
        return InputError(self._subject(message), path=self.path, remedy=self._map_remedy(name))

    def _subject(self, message: str) -> str:
        """Messages start with a verb after the file name; without one, name the source."""
        return (
            message if self.path is not None else f"The {self.schema.collection} source {message}"
        )

    def _map_remedy(self, name: str) -> str:
        similar = [column for column in self.header if _normalised(column) == name]
        if similar:
            return f"Read it from column {similar[0]!r} with --map {name}={similar[0]}."
        return f"Add the column, or read {name} from another column with --map {name}=COLUMN."


def _has_metadata(schema: ObjectSchema) -> bool:
    return any(field.kind is Kind.JSON_OBJECT for field in schema.fields)


def _column_for(name: str, mapping: Mapping[str, str], present: set[str]) -> str | None:
    mapped = mapping.get(name)
    if mapped is not None and mapped in present:
        return mapped
    return name if name in present else None


def _metadata_columns(
    header: Sequence[str], mapping: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    keys: dict[str, str] = {}
    for column in header:
        if column.startswith(METADATA_PREFIX) and len(column) > len(METADATA_PREFIX):
            keys[column[len(METADATA_PREFIX) :]] = column
    present = set(header)
    for field, column in mapping.items():
        if field.startswith(METADATA_PREFIX) and column in present:
            keys[field[len(METADATA_PREFIX) :]] = column
    return tuple(keys.items())


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


# -- the planner -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cell:
    field: str
    column: str
    parse: Parser | None
    required: bool


class RowPlanner:
    """Checks a source's columns once, then turns each of its records into a row or a problem.

    `mapping` is `--map FIELD=COLUMN` (see `ColumnMap`); `path` only improves the messages.
    """

    def __init__(
        self,
        pass_name: str,
        columns: Sequence[str],
        mapping: Mapping[str, str] | None = None,
        *,
        path: Path | None = None,
    ) -> None:
        if pass_name not in COLLECTIONS:
            raise ValueError(f"unknown pass {pass_name!r}")
        self.pass_name = pass_name
        self.schema = COLLECTIONS[pass_name]
        self.path = path
        self.column_map = ColumnMap.build(self.schema, columns, mapping or {}, path)
        self._is_customer = self.schema is CUSTOMER
        self._cells = tuple(
            _Cell(field.name, column, cell_parser(field, column), field.required)
            for field in payload_fields(self.schema)
            if (column := self.column_map.get(field.name)) is not None
            and field.kind is not Kind.JSON_OBJECT
        )
        self._has_metadata = _has_metadata(self.schema)
        metadata_column = self.column_map.get("metadata") if self._has_metadata else None
        self._metadata_cell = (
            _Cell(
                "metadata",
                metadata_column,
                cell_parser(self.schema.field("metadata"), metadata_column),
                False,
            )
            if metadata_column is not None
            else None
        )

    @property
    def field_columns(self) -> dict[str, str]:
        """Field (or key column) name → the column it is read from, for those present."""
        return self.column_map.fields

    @property
    def unknown_columns(self) -> tuple[str, ...]:
        """Columns read by nothing (read-only columns are ignored silently)."""
        return self.column_map.unknown

    @property
    def warning(self) -> str | None:
        """The one warning about unknown columns, or None."""
        return self.column_map.warning

    def plan(self, record: SourceRecord) -> PlannedRow | RowProblem:
        """The row to send for a record, or the first problem it has."""
        cells = record.cells
        try:
            return self._plan(record.line, cells)
        except CellError as error:
            return RowProblem(
                self.pass_name, record.line, error.column, error.code, error.message, cells
            )

    def _plan(self, line: int, cells: dict[str, str | None]) -> PlannedRow:
        customer_key: str | None = None
        customer_ref: str | None = None
        external_id_column = self.column_map.get("external_id")
        external_id = cells.get(external_id_column) if external_id_column else None
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
                if parsed is not UNSET:
                    payload[cell.field] = parsed
                    continue
            if cell.required:
                raise self._missing(cell.field)

        if self._has_metadata:
            metadata = self._metadata(cells, external_id)
            if metadata is not None:
                payload["metadata"] = metadata
        slug = None
        if self._is_customer:
            slug = payload.get("slug") or predicted_slug(payload["name"]) or None

        key: str | None = external_id  # always set for customers
        if key is None:
            parent = customer_key or customer_ref
            has_email = self.column_map.get("email") is not None
            key = f"{parent}/{payload['email'].lower()}" if has_email else parent
        assert key is not None
        return PlannedRow(
            self.pass_name, line, key, customer_key, customer_ref, payload, cells, slug
        )

    # -- per-row pieces

    def _customer(self, cells: Mapping[str, str | None]) -> tuple[str | None, str | None]:
        key_column = self.column_map.get("customer_external_id")
        ref_column = self.column_map.get("customer_id")
        key = cells.get(key_column) if key_column else None
        if key is not None:
            # SPEC: the external id wins, an export's `customer_id` names the source workspace
            return key, None
        ref = cells.get(ref_column) if ref_column else None
        if ref is None:
            if key_column and ref_column:
                raise CellError(
                    key_column,
                    "missing_field",
                    f"{key_column} and {ref_column} are both empty; set one of them",
                )
            raise self._missing("customer_external_id" if key_column else "customer_id")
        return None, ref

    def _metadata(
        self, cells: Mapping[str, str | None], external_id: str | None
    ) -> dict[str, Any] | None:
        metadata: dict[str, Any] | None = None
        if self._metadata_cell is not None and self._metadata_cell.parse is not None:
            value = cells.get(self._metadata_cell.column)
            if value is not None:
                parsed = self._metadata_cell.parse(value)
                if parsed is not UNSET:
                    metadata = parsed
        for key, column in self.column_map.metadata_keys:
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

    def _missing(self, field: str) -> CellError:
        column = self.column_map.shown(field)
        return CellError(column, "missing_field", f"{column} is required but empty")
