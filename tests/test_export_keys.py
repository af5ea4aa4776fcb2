"""What the export keeps (issue 9): fields this tool does not know, as extra columns, unknown
enum values as they came, and the keys the workspace's admin imports with.

Every test here failed before the change: the export dropped the newer API's fields, wrote the
Pivotal id as every customer's `external_id`, and children carried only `customer_external_id`
(the parent's Pivotal id).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import polars as pl
import pytest
from helpers import KEY, WORKSPACE, create

from bulk.exporting.exporter import run_export
from bulk.exporting.tables import frame, merge_parts, write_part
from bulk.importing.importer import run_import
from bulk.sandbox import Sandbox
from bulk.schema import CONTACT, CUSTOMER, ONBOARDING
from bulk.settings import ConnectionSettings, ExportSettings, ImportSettings

pytest_plugins = ["sandbox_helpers"]

FILES = {"customer": "customers", "contact": "contacts", "onboarding": "onboardings"}
CUSTOMER_EXTRAS = ("monthly_orders", "health_score", "health", "address", "integrations")
CONTACT_EXTRAS = ("linkedin_url", "timezone")
ONBOARDING_EXTRAS = ("checklist_progress", "risk_level")
EXTRAS = {"customer": CUSTOMER_EXTRAS, "contact": CONTACT_EXTRAS, "onboarding": ONBOARDING_EXTRAS}
NESTED = {"address", "integrations", "checklist_progress"}
"""The newer API's fields whose values are objects or arrays: JSON text in the export."""


def export_settings(sandbox: Sandbox, tmp_path: Path, **options: Any) -> ExportSettings:
    connection = ConnectionSettings(api_key=KEY, base_url=sandbox.base_url)
    return ExportSettings(connection=connection, out_dir=tmp_path / "export", quiet=True, **options)


def read(out_dir: Path, object_name: str, file_format: str) -> pl.DataFrame:
    path = out_dir / f"{FILES[object_name]}.{file_format}"
    return pl.read_csv(path, infer_schema=False) if file_format == "csv" else pl.read_parquet(path)


async def seed_newer_workspace(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    """Five customers (two with the newer API's own status), contacts and onboardings (one
    with the newer API's own state)."""
    customers = [
        await create(http, sandbox, "/customers", body)
        for body in (
            {"name": "Acme", "status": "active", "metadata": {"external_id": "001731"}},
            {"name": "Future Foods"},  # no status: the newer API gives it `paused_billing`
            {"name": "Globex", "tags": ["a", "b"]},
            {"name": "Future Farms", "mrr": 7},
            {"name": "Initech", "status": "churned"},
        )
    ]
    for i, customer in enumerate(customers[:3]):
        for j in range(2):
            body = {"name": f"P{j}", "email": f"p{j}@c{i}.example", "labels": ["x"]}
            await create(http, sandbox, f"/customers/{customer['id']}/contacts", body)
    for name, customer in (("Future rollout", customers[0]), ("Rollout", customers[2])):
        await create(http, sandbox, "/onboardings", {"customer_id": customer["id"], "name": name})


def as_text(value: Any) -> str | None:
    """An extra field's cell in CSV: JSON for nested values, the plain text of scalars."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
async def test_fields_the_tool_does_not_know_are_kept_as_extra_columns(
    extra_sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path, file_format: str
) -> None:
    await seed_newer_workspace(http, extra_sandbox)
    # two rows a part: the extra columns must come through the merge of many parts
    settings = export_settings(extra_sandbox, tmp_path, file_format=file_format, part_rows=2)

    outcome = await run_export(settings)

    assert outcome.exit_code == 0, outcome.error
    assert outcome.counts == {"customer": 5, "contact": 6, "onboarding": 2}
    for object_name, extras in EXTRAS.items():
        table = read(settings.out_dir, object_name, file_format)
        assert table.columns[-len(extras) :] == list(extras)  # after the known columns
        by_id = {row["id"]: row for row in table.to_dicts()}
        stored = extra_sandbox.objects(WORKSPACE, object_name)
        assert set(by_id) == {record["id"] for record in stored}
        for record in stored:
            row = by_id[record["id"]]
            for name in extras:
                if file_format == "csv":
                    assert row[name] == as_text(record[name]), name
                elif name in NESTED:
                    assert json.loads(row[name]) == record[name], name
                else:
                    assert row[name] == record[name], name
        if file_format == "parquet":
            expected_types = {
                "monthly_orders": pl.Int64,
                "health_score": pl.Int64,
                "health": pl.String,
                "address": pl.String,
                "integrations": pl.String,
                "linkedin_url": pl.String,
                "timezone": pl.String,
                "checklist_progress": pl.String,
                "risk_level": pl.String,
            }
            assert {name: table.schema[name] for name in extras} == {
                name: expected_types[name] for name in extras
            }


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
async def test_unknown_enum_values_are_exported_as_they_came(
    extra_sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path, file_format: str
) -> None:
    await seed_newer_workspace(http, extra_sandbox)
    settings = export_settings(extra_sandbox, tmp_path, file_format=file_format)

    outcome = await run_export(settings)

    assert outcome.exit_code == 0, outcome.error
    customers = read(settings.out_dir, "customer", file_format)
    statuses = dict(zip(customers["name"], customers["status"], strict=True))
    assert statuses == {
        "Acme": "active",
        "Future Foods": "paused_billing",
        "Globex": "onboarding",
        "Future Farms": "paused_billing",
        "Initech": "churned",
    }
    onboardings = read(settings.out_dir, "onboarding", file_format)
    states = dict(zip(onboardings["name"], onboardings["state"], strict=True))
    assert states == {"Future rollout": "on_hold", "Rollout": "active"}


def customer(number: int, **extras: Any) -> dict[str, Any]:
    """A customer as the API sends it, with `extras` in place of the newer API's fields."""
    return {
        "object": "customer",
        "id": f"cus_{number}",
        "display_id": number,
        "name": f"C{number}",
        **extras,
        "created_at": f"2026-05-26T17:21:0{number}.412Z",
        "updated_at": f"2026-05-26T17:21:0{number}.412Z",
    }


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_extra_columns_are_unified_across_part_files(tmp_path: Path, file_format: str) -> None:
    """Each part types its extra columns from its own rows; the merge gives every column one
    type that holds every part's values (integers and floats: floats; anything else mixed:
    text), and a column that first appears in a later part is null in the earlier ones."""
    parts = [
        [customer(1, score=1, note=None, flag=None)],
        [customer(2, score=2.5, note={"a": [1, "é"]}, flag=True, late=None)],
        [customer(3, score=None, note="plain", flag=False, late=3)],
    ]
    paths = []
    for number, rows in enumerate(parts, start=1):
        path = tmp_path / f"customers-{number:06d}.{file_format}"
        write_part(frame("customer", rows, file_format), path, file_format)
        paths.append(path)
    destination = tmp_path / f"customers.{file_format}"

    count = merge_parts("customer", paths, destination, file_format)

    assert count == 3
    table = read_path(destination, file_format)
    assert table.columns[-4:] == ["score", "note", "flag", "late"]
    assert table["id"].to_list() == ["cus_1", "cus_2", "cus_3"]
    if file_format == "csv":
        assert table["score"].to_list() == ["1", "2.5", None]
        assert table["flag"].to_list() == [None, "true", "false"]
        assert table["late"].to_list() == [None, None, "3"]
    else:
        assert table.schema["score"] == pl.Float64
        assert table.schema["flag"] == pl.Boolean
        assert table.schema["late"] == pl.Int64
        assert table["score"].to_list() == [1.0, 2.5, None]
        assert table["flag"].to_list() == [None, True, False]
        assert table["late"].to_list() == [None, None, 3]
    assert table["note"].to_list() == [None, '{"a": [1, "é"]}', "plain"]


def read_path(path: Path, file_format: str) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False) if file_format == "csv" else pl.read_parquet(path)


# -- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
async def test_external_id_is_the_customers_own_key_where_it_is_unique(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path, file_format: str
) -> None:
    async def customer_with(name: str, metadata: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if metadata is not None:
            body["metadata"] = metadata
        return await create(http, sandbox, "/customers", body)

    own = await customer_with("Own", {"external_id": "001731", "region": "emea"})
    none = await customer_with("None", None)
    twin_a = await customer_with("Twin A", {"external_id": "dup"})
    twin_b = await customer_with("Twin B", {"external_id": "dup"})
    number = await customer_with("Number", {"external_id": 42})  # not text: not an import key
    blank = await customer_with("Blank", {"external_id": ""})
    # its own key is another customer's Pivotal id, which that customer exports as its key
    shadow = await customer_with("Shadow", {"external_id": none["id"]})
    contacts = {
        parent["id"]: await create(
            http,
            sandbox,
            f"/customers/{parent['id']}/contacts",
            {"name": "P", "email": f"p@{parent['display_id']}.example"},
        )
        for parent in (own, none, twin_a)
    }
    onboardings = {
        parent["id"]: await create(http, sandbox, "/onboardings", {"customer_id": parent["id"]})
        for parent in (own, shadow)
    }
    settings = export_settings(sandbox, tmp_path, file_format=file_format)

    outcome = await run_export(settings)

    assert outcome.exit_code == 0, outcome.error
    customers = read(settings.out_dir, "customer", file_format)
    keys = dict(zip(customers["id"], customers["external_id"], strict=True))
    expected = {
        own["id"]: "001731",
        none["id"]: none["id"],
        twin_a["id"]: twin_a["id"],
        twin_b["id"]: twin_b["id"],
        number["id"]: number["id"],
        blank["id"]: blank["id"],
        shadow["id"]: shadow["id"],
    }
    assert keys == expected
    assert "customer_id" not in customers.columns
    for object_name, made in (("contact", contacts), ("onboarding", onboardings)):
        table = read(settings.out_dir, object_name, file_format)
        assert table.columns[:5] == [
            "external_id",
            "id",
            "display_id",
            "customer_id",
            "customer_external_id",
        ]
        rows = {row["id"]: row for row in table.to_dicts()}
        assert set(rows) == {child["id"] for child in made.values()}
        for parent_id, child in made.items():
            row = rows[child["id"]]
            assert row["external_id"] == child["id"]
            assert row["customer_id"] == parent_id
            assert row["customer_external_id"] == expected[parent_id]


async def test_an_export_with_a_newer_apis_enum_values_imports_back_into_it(
    extra_sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await seed_newer_workspace(http, extra_sandbox)
    settings = export_settings(extra_sandbox, tmp_path)
    assert (await run_export(settings)).exit_code == 0
    reimport = ImportSettings(
        connection=ConnectionSettings(api_key="pivotal_globex", base_url=extra_sandbox.base_url),
        folders=(settings.out_dir,),
        checkpoint=tmp_path / "reimport.sqlite",
        quiet=True,
    )

    outcome = await run_import(reimport)

    assert outcome.exit_code == 0, outcome.error
    source, copy = (as_written(extra_sandbox, workspace) for workspace in (WORKSPACE, "globex"))
    assert copy == source
    assert sorted(row["status"] for row in source["customer"].values()) == [
        "active",
        "churned",
        "onboarding",
        "paused_billing",
        "paused_billing",
    ]
    assert {row["state"] for row in source["onboarding"].values()} == {"on_hold", "active"}


def as_written(sandbox: Sandbox, workspace: str) -> dict[str, dict[Any, dict[str, Any]]]:
    """A workspace's objects, every writable field but the customers' metadata (the import
    adds its key there), keyed by name; children by their customer's name."""
    customers = sandbox.objects(workspace, "customer")
    name_of = {row["id"]: row["name"] for row in customers}
    tables: dict[str, dict[Any, dict[str, Any]]] = {}
    for schema in (CUSTOMER, CONTACT, ONBOARDING):
        names = [f.name for f in schema.writable() if f.name not in ("customer_id", "metadata")]
        rows = customers if schema is CUSTOMER else sandbox.objects(workspace, schema.object)
        tables[schema.object] = {
            (name_of.get(row.get("customer_id", "")), row["name"], row.get("email")): {
                name: row[name] for name in names
            }
            for row in rows
        }
    assert [len(table) for table in tables.values()] == [5, 6, 2]  # every key is unique
    return tables
