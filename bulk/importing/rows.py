"""Turning source records into API payloads, one pass at a time.

The columns are resolved once per source (`bulk.importing.mapping.ColumnMap`: which column or
template each field is read from, given the header and the maps); each cell is then parsed by
`bulk.importing.cells`, so the per-row work is a dictionary lookup and one call per set cell.
A record becomes a `PlannedRow` (its identity and payload) or a `RowProblem` (every problem it
has).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulk.importing.cells import UNSET, CellError, Parser, cell_parser, show
from bulk.importing.mapping import (
    NO_MAPPING,
    ColumnMap,
    SourceMapping,
    has_metadata,
    payload_fields,
)
from bulk.importing.sources import SourceRecord
from bulk.schema import COLLECTIONS, CUSTOMER, SLUG_MAX_LENGTH, Kind, canonical_json, text_digest

_NON_SLUG = re.compile(r"[^a-z0-9]+")
_SHOWN_UNDOCUMENTED = 5
"""How many undocumented values of one column a warning names (the most frequent first)."""


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
class Issue:
    """One problem of a row: its column (None: the row as a whole), the API's error code and a
    sentence naming the column and the value, e.g. `email 'bob@' is not an email address`."""

    column: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class RowProblem:
    """An invalid row: the first problem found, with the API's error code, and the others
    (every problem is reported at once, so one round of fixes suffices)."""

    pass_name: str
    line: int
    column: str | None
    code: str
    message: str
    """A sentence naming the column and the value, e.g. `email 'bob@' is not an email address`."""
    cells: dict[str, str | None]
    more: tuple[Issue, ...] = ()
    """The row's other problems, in the order its cells are checked."""

    @property
    def issues(self) -> tuple[Issue, ...]:
        """Every problem of the row, the first one first."""
        return (Issue(self.column, self.code, self.message), *self.more)


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


# -- the planner -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cell:
    field: str
    column: str
    """The cell it is read from (`ColumnMap.get`); messages name `ColumnMap.shown`."""
    parse: Parser | None
    required: bool


class RowPlanner:
    """Checks a source's columns once, then turns each of its records into a row or a problem.

    `mapping` holds the `--map` and `--map-file` maps (see `bulk.importing.mapping`); `path` only
    improves the messages.
    """

    def __init__(
        self,
        pass_name: str,
        columns: Sequence[str],
        mapping: SourceMapping = NO_MAPPING,
        *,
        path: Path | None = None,
    ) -> None:
        if pass_name not in COLLECTIONS:
            raise ValueError(f"unknown pass {pass_name!r}")
        self.pass_name = pass_name
        self.schema = COLLECTIONS[pass_name]
        self.path = path
        self.column_map = ColumnMap.build(self.schema, columns, mapping.for_pass(pass_name), path)
        self._is_customer = self.schema is CUSTOMER
        shown = self.column_map.shown
        self._cells = tuple(
            _Cell(field.name, column, cell_parser(field, shown(field.name)), field.required)
            for field in payload_fields(self.schema)
            if (column := self.column_map.get(field.name)) is not None
            and field.kind is not Kind.JSON_OBJECT
        )
        self._enums = tuple(
            (cell.field, frozenset(self.schema.field(cell.field).choices))
            for cell in self._cells
            if self.schema.field(cell.field).kind is Kind.ENUM
        )
        self._undocumented: dict[str, Counter[str]] = {}
        """Enum field → the undocumented values its valid rows pass through → how many rows."""
        self._has_metadata = has_metadata(self.schema)
        metadata_column = self.column_map.get("metadata") if self._has_metadata else None
        self._metadata_cell = (
            _Cell(
                "metadata",
                metadata_column,
                cell_parser(self.schema.field("metadata"), shown("metadata")),
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

    @property
    def undocumented_warnings(self) -> tuple[str, ...]:
        """One warning per enum column whose valid rows hold values the docs do not list
        (`paused_billing`): they are sent as they are, so a typo shows before anything is sent."""
        return tuple(
            self._undocumented_warning(field, values)
            for field, values in self._undocumented.items()
        )

    def plan(self, record: SourceRecord) -> PlannedRow | RowProblem:
        """The row to send for a record, or every problem it has."""
        cells = record.cells
        found: list[CellError] = []
        try:
            texts = self.column_map.apply(cells)
        except CellError as error:
            found.append(error)
        else:
            planned = self._plan(record.line, cells, texts, found)
            if planned is not None:
                return planned
        first, *others = found
        more = tuple(Issue(error.column, error.code, error.message) for error in others)
        return RowProblem(
            self.pass_name, record.line, first.column, first.code, first.message, cells, more
        )

    def external_id_of(self, cells: Mapping[str, str | None]) -> str | None:
        """A record's external_id as its (mapped) cells say, whether or not the row is valid."""
        column = self.column_map.get("external_id")
        return self.column_map.apply(cells).get(column) if column is not None else None

    def _plan(
        self,
        line: int,
        cells: dict[str, str | None],
        texts: Mapping[str, str | None],
        found: list[CellError],
    ) -> PlannedRow | None:
        """The planned row, or None after adding each of its problems to `found`. `texts` are
        the cells every field is read from (`ColumnMap.apply`); `cells` are kept as the source
        has them."""
        customer_key: str | None = None
        customer_ref: str | None = None
        external_id_column = self.column_map.get("external_id")
        external_id = texts.get(external_id_column) if external_id_column else None
        if self._is_customer:
            if external_id is None:
                found.append(self._missing("external_id"))
        else:
            try:
                customer_key, customer_ref = self._customer(texts)
            except CellError as error:
                found.append(error)

        payload: dict[str, Any] = {}
        for cell in self._cells:
            try:
                self._read(cell, texts, payload)
            except CellError as error:
                found.append(error)

        if self._has_metadata:
            try:
                metadata = self._metadata(texts, external_id)
            except CellError as error:
                found.append(error)
            else:
                if metadata is not None:
                    payload["metadata"] = metadata
        if found:
            return None
        self._count_undocumented(payload)
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

    def _read(self, cell: _Cell, cells: Mapping[str, str | None], payload: dict[str, Any]) -> None:
        """Put the cell's value in `payload`, if it is set; raise `CellError` if it is bad."""
        value = cells.get(cell.column)
        if value is not None:
            if cell.parse is None:
                payload[cell.field] = value
                return
            parsed = cell.parse(value)
            if parsed is not UNSET:
                payload[cell.field] = parsed
                return
        if cell.required:
            raise self._missing(cell.field)

    def _customer(self, cells: Mapping[str, str | None]) -> tuple[str | None, str | None]:
        key_cell = self.column_map.get("customer_external_id")
        ref_cell = self.column_map.get("customer_id")
        key = cells.get(key_cell) if key_cell else None
        if key is not None:
            # SPEC: the external id wins, an export's `customer_id` names the source workspace
            return key, None
        ref = cells.get(ref_cell) if ref_cell else None
        key_column = self.column_map.shown("customer_external_id")
        ref_column = self.column_map.shown("customer_id")
        if ref is None:
            if key_cell and ref_cell:
                raise CellError(
                    key_column,
                    "missing_field",
                    f"{key_column} and {ref_column} are both empty; set one of them",
                )
            raise self._missing("customer_external_id" if key_cell else "customer_id")
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

    def _count_undocumented(self, payload: Mapping[str, Any]) -> None:
        for field, documented in self._enums:
            value = payload.get(field)
            if value is not None and value not in documented:
                self._undocumented.setdefault(field, Counter())[value] += 1

    def _undocumented_warning(self, field: str, values: Counter[str]) -> str:
        where = f"{self.path.name}: " if self.path is not None else f"{self.schema.collection}: "
        common = values.most_common()
        named = [f"{show(value)} ({rows} row{'s' if rows > 1 else ''})" for value, rows in common]
        if len(named) > _SHOWN_UNDOCUMENTED:
            rest = len(named) - _SHOWN_UNDOCUMENTED
            named = [*named[:_SHOWN_UNDOCUMENTED], f"{rest} more"]
        listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
        column = self.column_map.shown(field)
        if len(common) == 1:
            verdict = "is not a documented value; it is sent as it is"
            newer = "a newer API may know it"
        else:
            verdict = "are not documented values; they are sent as they are"
            newer = "a newer API may know them"
        return f"{where}{column} {listed} {verdict} and the API decides ({newer})."

    def _missing(self, field: str) -> CellError:
        column = self.column_map.shown(field)
        return CellError(column, "missing_field", f"{column} is required but empty")
