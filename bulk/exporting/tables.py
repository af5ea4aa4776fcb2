"""API objects as typed tables: the export's column layout, its part files and their merge.

Columns come from `bulk.schema` with an explicit dtype each (never inferred: polars drops keys it
meets late and chokes on all-null columns). Timestamps are datetimes, `tags`/`labels` lists of
strings, `metadata` JSON text. `external_id` holds the Pivotal `id` and children carry
`customer_external_id`, so an export folder is valid `bulk import` input. In CSV, lists are
JSON arrays and timestamps the API's ISO text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from bulk.schema import OBJECT_SCHEMAS, SCHEMAS, TIMESTAMP_FORMAT, Kind

FILE_NAMES = {schema.object: schema.collection for schema in OBJECT_SCHEMAS}
"""Each object type's export file stem: its collection."""
_DTYPES: dict[Kind, pl.DataType] = {
    Kind.INTEGER: pl.Int64(),
    Kind.BOOLEAN: pl.Boolean(),
    Kind.DATETIME: pl.Datetime("ms", "UTC"),
    Kind.STRING_LIST: pl.List(pl.String()),
}


def columns(object_name: str) -> dict[str, pl.DataType]:
    """The export's columns for one object type, in order, with their dtypes."""
    layout: dict[str, pl.DataType] = {
        "external_id": pl.String(),
        "id": pl.String(),
        "display_id": pl.Int64(),
    }
    for field in SCHEMAS[object_name].fields:
        name = "customer_external_id" if field.name == "customer_id" else field.name
        layout[name] = _DTYPES.get(field.kind, pl.String())
    layout["created_at"] = pl.Datetime("ms", "UTC")
    layout["updated_at"] = pl.Datetime("ms", "UTC")
    return layout


def frame(object_name: str, rows: Sequence[Mapping[str, Any]], file_format: str) -> pl.DataFrame:
    """A typed frame of API objects (for CSV: lists as JSON text, timestamps as ISO text)."""
    layout = columns(object_name)
    as_text = file_format == "csv"
    data: dict[str, list[Any]] = {name: [] for name in layout}
    for row in rows:
        for name, dtype in layout.items():
            value = _cell(name, row)
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


def _cell(name: str, row: Mapping[str, Any]) -> Any:
    if name == "external_id":
        return row.get("id")
    if name == "customer_external_id":
        return row.get("customer_id")
    value = row.get(name)
    if name == "metadata":
        return json.dumps(value if value is not None else {}, ensure_ascii=False, sort_keys=True)
    return value


def write_part(table: pl.DataFrame, path: Path, file_format: str) -> None:
    """Write a part file under a temporary name, then rename: a part exists whole or not at all."""
    write = table.write_csv if file_format == "csv" else table.write_parquet
    _atomically(path, write)


def _atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write` to a temporary name beside `path`, then rename it into place."""
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    os.replace(temporary, path)


def merge_parts(
    object_name: str,
    parts: Iterable[Path],
    destination: Path,
    file_format: str,
    parents: Path | None = None,
) -> int:
    """Combine part files into one output file, streaming; returns its row count.

    With `parents` (the merged customers file), rows whose customer is not in it are dropped:
    their customer was deleted during the export, which hides them too.
    """
    part_list = sorted(parts)
    if not part_list:
        write_part(frame(object_name, [], file_format), destination, file_format)
        return 0
    rows = pl.concat([_scan(part, file_format) for part in part_list])
    if parents is not None:
        customers = _scan(parents, file_format).select(pl.col("id").alias("customer_external_id"))
        rows = rows.join(customers, on="customer_external_id", how="semi", maintain_order="left")
    _atomically(destination, rows.sink_csv if file_format == "csv" else rows.sink_parquet)
    return int(_scan(destination, file_format).select(pl.len()).collect().item())


def _scan(path: Path, file_format: str) -> pl.LazyFrame:
    return pl.scan_csv(path, infer_schema=False) if file_format == "csv" else pl.scan_parquet(path)
