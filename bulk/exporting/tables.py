"""API objects as typed tables: the export's column layout, its part files and their merge.

**Known columns** come from `bulk.schema` with an explicit dtype each (never inferred: polars
drops keys it meets late and chokes on all-null columns). Timestamps are datetimes,
`tags`/`labels` lists of strings, `metadata` JSON text. In CSV, lists are JSON arrays and
timestamps the API's ISO text.

**Extra columns** keep the fields the API sent that `bulk.schema` does not list (a newer API's),
after the known ones, in the order they were first met. A part types each from its own values,
and the merge gives each one type that holds every part's values: booleans stay booleans,
integers `Int64`, integers mixed with floats `Float64`, strings strings; anything else (objects,
arrays, mixed kinds) is text — JSON for objects and arrays, plain text for scalars. Nested values
are JSON text rather than polars lists or structs so that CSV and Parquet agree and the export
stays valid `bulk import` input (which refuses list columns other than `tags`/`labels`). A field
missing from a row, or from a whole part, is null there. Unknown enum values of known fields are
kept as they came: enums are plain strings.

**Keys**, so that an export folder is valid `bulk import` input and matches the spreadsheet its
admin imports with: `id` is the Pivotal id; a customer's `external_id` is its own
`metadata.external_id` where that is non-blank text unique in the workspace, else its `id`;
children carry `customer_id` (the Pivotal id) and `customer_external_id` (their customer's
`external_id`), and their own `id` as `external_id`. Uniqueness is only known once every customer
is, so parts hold each customer's own key (or null) and the merge decides.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from bulk.schema import CUSTOMER, OBJECT_SCHEMAS, SCHEMAS, TIMESTAMP_FORMAT, Kind

FILE_NAMES = {schema.object: schema.collection for schema in OBJECT_SCHEMAS}
"""Each object type's export file stem: its collection."""
_DTYPES: dict[Kind, pl.DataType] = {
    Kind.INTEGER: pl.Int64(),
    Kind.BOOLEAN: pl.Boolean(),
    Kind.DATETIME: pl.Datetime("ms", "UTC"),
    Kind.STRING_LIST: pl.List(pl.String()),
}
_INT64_RANGE = range(-(2**63), 2**63)
ENVELOPE = frozenset({"object"})
"""Response fields that are no column: the envelope's type is the file's."""


def columns(object_name: str) -> dict[str, pl.DataType]:
    """The export's known columns for one object type, in order, with their dtypes."""
    layout: dict[str, pl.DataType] = {
        "external_id": pl.String(),
        "id": pl.String(),
        "display_id": pl.Int64(),
    }
    for field in SCHEMAS[object_name].fields:
        layout[field.name] = _DTYPES.get(field.kind, pl.String())
        if field.name == "customer_id":
            layout["customer_external_id"] = pl.String()
    layout["created_at"] = pl.Datetime("ms", "UTC")
    layout["updated_at"] = pl.Datetime("ms", "UTC")
    return layout


def frame(object_name: str, rows: Sequence[Mapping[str, Any]], file_format: str) -> pl.DataFrame:
    """A typed frame of API objects: the known columns, then the extra ones (for CSV: lists
    and nested values as JSON text, timestamps as ISO text)."""
    as_text = file_format == "csv"
    known = _known_frame(object_name, rows, as_text)
    extras = [
        _extra_series(name, [row.get(name) for row in rows], as_text)
        for name in _extra_names(object_name, rows)
    ]
    return known.with_columns(extras) if extras else known


def _known_frame(
    object_name: str, rows: Sequence[Mapping[str, Any]], as_text: bool
) -> pl.DataFrame:
    layout = columns(object_name)
    data: dict[str, list[Any]] = {name: [] for name in layout}
    for row in rows:
        for name, dtype in layout.items():
            value = _cell(object_name, name, row)
            if as_text and isinstance(dtype, pl.List) and value is not None:
                value = json.dumps(value, ensure_ascii=False)
            data[name].append(value)
    read_schema = {
        name: pl.String()
        if isinstance(dtype, pl.Datetime) or (as_text and dtype == pl.List)
        else dtype
        for name, dtype in layout.items()
    }
    table = pl.DataFrame(data, schema=read_schema, strict=False)
    if as_text:
        return table
    return table.with_columns(
        pl.col(name).str.to_datetime(
            TIMESTAMP_FORMAT, time_unit="ms", time_zone="UTC", strict=False
        )
        for name, dtype in layout.items()
        if isinstance(dtype, pl.Datetime)
    )


def _cell(object_name: str, name: str, row: Mapping[str, Any]) -> Any:
    if name == "external_id":
        return own_key(row) if object_name == CUSTOMER.object else row.get("id")
    if name == "customer_external_id":
        return None  # the customer's export key, known at the merge
    value = row.get(name)
    if name == "metadata":
        return json.dumps(value if value is not None else {}, ensure_ascii=False, sort_keys=True)
    return value


def own_key(customer: Mapping[str, Any]) -> str | None:
    """The customer's own `metadata.external_id`, when it is text a spreadsheet can hold."""
    metadata = customer.get("metadata")
    key = metadata.get("external_id") if isinstance(metadata, Mapping) else None
    return key if isinstance(key, str) and key.strip() else None


def _extra_names(object_name: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Fields of the rows that are no known column, in the order first met."""
    known = set(columns(object_name)) | ENVELOPE
    names: dict[str, None] = {}
    for row in rows:
        names.update((name, None) for name in row if name not in known)
    return list(names)


def _extra_series(name: str, values: list[Any], as_text: bool) -> pl.Series:
    """One extra column of a part, typed by its own values (see the module docstring)."""
    dtype = pl.String() if as_text else _part_dtype({_kind(v) for v in values if v is not None})
    if dtype == pl.String:
        values = [_as_text(value) for value in values]
    return pl.Series(name, values, dtype=dtype, strict=False)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if value in _INT64_RANGE else "other"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else "other"


def _part_dtype(kinds: set[str]) -> pl.DataType:
    """The narrowest dtype holding values of these kinds; `Null` for none (all null)."""
    if not kinds:
        return pl.Null()
    if kinds == {"bool"}:
        return pl.Boolean()
    if kinds == {"int"}:
        return pl.Int64()
    if kinds <= {"int", "float"}:
        return pl.Float64()
    return pl.String()


def _unified_dtype(dtypes: Iterable[pl.DataType]) -> pl.DataType:
    """One extra column's dtype in the merged file, from its dtypes in the parts."""
    present: list[pl.DataType] = []
    for dtype in dtypes:
        if dtype != pl.Null and dtype not in present:
            present.append(dtype)
    if len(present) == 1:
        return present[0]
    if present and all(dtype in (pl.Int64, pl.Float64) for dtype in present):
        return pl.Float64()
    return pl.String()  # none (null in every part) or mixed: text


def _as_text(value: Any) -> str | None:
    """A value in a text column: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def write_part(table: pl.DataFrame, path: Path, file_format: str) -> None:
    """Write a part file under a temporary name, then rename: a part exists whole or not at all."""
    write = table.write_csv if file_format == "csv" else table.write_parquet
    _atomically(path, write)


def _atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write` to a temporary name beside `path`, then rename it into place."""
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    os.replace(temporary, path)


def read_column(parts: Sequence[Path], column: str, file_format: str) -> list[str]:
    """One column of the part files, in order, as text (parts may differ in extra columns)."""
    if not parts:
        return []
    scans = [scan_part(part, file_format).select(column) for part in parts]
    values = pl.concat(scans).collect()[column].to_list()
    return [str(value) for value in values if value is not None]


def merge_parts(
    object_name: str,
    parts: Iterable[Path],
    destination: Path,
    file_format: str,
    parents: Path | None = None,
) -> int:
    """Combine part files into one output file, streaming; returns its row count.

    Every part is brought to one layout (the known columns, then every part's extra columns
    with one dtype each). Customers get their `external_id` (see the module docstring). With
    `parents` (the merged customers file), children get their `customer_external_id`, and
    rows whose customer is not in it are dropped: their customer was deleted during the
    export, which hides them too.
    """
    part_list = sorted(parts)
    if not part_list:
        write_part(frame(object_name, [], file_format), destination, file_format)
        return 0
    scans = [scan_part(part, file_format) for part in part_list]
    layout = _merged_layout(object_name, scans, file_format)
    rows = pl.concat([_conformed(scan, layout) for scan in scans])
    if object_name == CUSTOMER.object:
        rows = _with_customer_keys(rows)
    elif parents is not None:
        rows = _with_parent_keys(rows, scan_part(parents, file_format))
    rows = rows.select(list(layout))
    _atomically(destination, rows.sink_csv if file_format == "csv" else rows.sink_parquet)
    return int(scan_part(destination, file_format).select(pl.len()).collect().item())


def _merged_layout(
    object_name: str, scans: Sequence[pl.LazyFrame], file_format: str
) -> dict[str, pl.DataType]:
    """The merged file's columns: the known ones, then each extra column in the order the
    parts first show it, with the dtype that holds every part's values."""
    known = columns(object_name)
    seen: dict[str, list[pl.DataType]] = {}
    for scan in scans:
        for name, dtype in scan.collect_schema().items():
            if name not in known:
                seen.setdefault(name, []).append(dtype)
    if file_format == "csv":
        return {name: pl.String() for name in (*known, *seen)}
    return {**known, **{name: _unified_dtype(dtypes) for name, dtypes in seen.items()}}


def _conformed(scan: pl.LazyFrame, layout: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """One part in the merged layout: missing columns null, extra columns cast."""
    schema = scan.collect_schema()
    return scan.select(
        (pl.col(name) if schema[name] == dtype else pl.col(name).cast(dtype))
        if name in schema
        else pl.lit(None, dtype).alias(name)
        for name, dtype in layout.items()
    )


def _with_customer_keys(rows: pl.LazyFrame) -> pl.LazyFrame:
    ids = rows.select("id", "external_id").collect()  # two short columns: fine in memory
    keys = export_keys(ids["id"].to_list(), ids["external_id"].to_list())
    chosen = pl.LazyFrame({"id": ids["id"], "chosen": keys}, schema_overrides={"chosen": pl.String})
    joined = rows.join(chosen, on="id", how="left", maintain_order="left")
    return joined.with_columns(pl.col("chosen").alias("external_id")).drop("chosen")


def export_keys(ids: Sequence[str], own: Sequence[str | None]) -> list[str]:
    """Each customer's export `external_id`: its own key where no other customer has that key
    (its own or its id), else its Pivotal id (ids are unique, so this ends)."""
    counts = Counter(key for key in own if key is not None)
    keys = [
        key if key is not None and counts[key] == 1 else i for i, key in zip(ids, own, strict=True)
    ]
    while True:
        taken = Counter(keys)
        clashing = {key for key, n in taken.items() if n > 1}
        if not clashing:
            return keys
        keys = [i if key in clashing else key for i, key in zip(ids, keys, strict=True)]


def _with_parent_keys(rows: pl.LazyFrame, customers: pl.LazyFrame) -> pl.LazyFrame:
    parents = customers.select(
        pl.col("id").alias("customer_id"), pl.col("external_id").alias("parent_key")
    )
    joined = rows.join(parents, on="customer_id", how="inner", maintain_order="left")
    return joined.with_columns(pl.col("parent_key").alias("customer_external_id")).drop(
        "parent_key"
    )


def scan_part(path: Path, file_format: str) -> pl.LazyFrame:
    return pl.scan_csv(path, infer_schema=False) if file_format == "csv" else pl.scan_parquet(path)
