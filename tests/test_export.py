"""`bulk export` against a real sandbox: the samples' workspace as typed files and a manifest,
CSV, the export re-imported elsewhere, soft deletes, tie-heavy workspaces, warnings and exit
codes, the request count, and a re-run of a finished export. The samples' tests run against the
sandbox in its normal and its `--extra-fields` mode (a newer API, with fields and enum values
this tool does not know)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import signal
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import polars as pl
import pytest
import pytest_asyncio
from click.testing import CliRunner
from helpers import (
    KEY,
    SAMPLES,
    TIMESTAMP,
    WORKSPACE,
    ManualClock,
    api,
    at_ms,
    create,
    import_settings,
)

from bulk._version import __version__
from bulk.checkpoint import Checkpoint
from bulk.cli import main
from bulk.errors import UsageError
from bulk.exporting.exporter import run_export
from bulk.importing.importer import run_import
from bulk.progress import ProgressFactory
from bulk.sandbox import Sandbox, SandboxConfig, sandbox_in_thread
from bulk.schema import (
    CONTACT,
    CUSTOMER,
    CUSTOMER_STATUSES,
    ONBOARDING,
    ONBOARDING_STATES,
    format_epoch_ms,
)
from bulk.settings import ConnectionSettings, ExportSettings, ImportSettings

pytest_plugins = ["sandbox_helpers"]

START_MS = 1_780_000_000_000
FILES = {"customer": "customers", "contact": "contacts", "onboarding": "onboardings"}
DATETIMES = {
    "customer": ("created_at", "updated_at"),
    "contact": ("created_at", "updated_at"),
    "onboarding": (
        "target_launch_date",
        "started_at",
        "completed_at",
        "created_at",
        "updated_at",
    ),
}
BOOLEANS = {
    "customer": ("livemode",),
    "contact": ("is_primary", "livemode"),
    "onboarding": ("waiting_on_customer", "reminders_enabled", "livemode"),
}
INTEGERS = {
    "customer": ("display_id", "mrr"),
    "contact": ("display_id",),
    "onboarding": ("display_id", "reminder_frequency_days"),
}
LISTS = {"customer": ("tags",), "contact": ("labels",), "onboarding": ()}
NESTED = {"address", "integrations", "checklist_progress"}
"""The newer API's fields holding objects or arrays (`--extra-fields`): JSON text."""


# -- fixtures and helpers --------------------------------------------------------------------


def export_settings(
    sandbox: Sandbox, tmp_path: Path, key: str = KEY, **options: Any
) -> ExportSettings:
    connection = ConnectionSettings(api_key=key, base_url=sandbox.base_url)
    options.setdefault("out_dir", tmp_path / "export")
    return ExportSettings(connection=connection, quiet=True, **options)


def read(out_dir: Path, object_name: str, file_format: str = "parquet") -> pl.DataFrame:
    if file_format == "csv":
        return pl.read_csv(out_dir / f"{FILES[object_name]}.csv", infer_schema=False)
    return pl.read_parquet(out_dir / f"{FILES[object_name]}.parquet")


def api_text(moment: datetime | None) -> str | None:
    """A datetime cell as the API writes it."""
    if moment is None:
        return None
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def live(sandbox: Sandbox, object_name: str) -> list[dict[str, Any]]:
    """What a complete export must hold: live rows whose customer (for children) is live."""
    rows = sandbox.objects(WORKSPACE, object_name)
    if object_name == "customer":
        return rows
    customers = {row["id"] for row in sandbox.objects(WORKSPACE, "customer")}
    return [row for row in rows if row["customer_id"] in customers]


def assert_exactly_the_live_rows(
    table: pl.DataFrame, expected: Sequence[Mapping[str, Any]]
) -> None:
    counts = Counter(table["id"].to_list())
    assert [row_id for row_id, n in counts.items() if n > 1] == []
    assert set(counts) == {row["id"] for row in expected}


def export_key(customer: Mapping[str, Any]) -> str:
    """A customer's export `external_id` where every `metadata.external_id` is unique."""
    own = (customer.get("metadata") or {}).get("external_id")
    return own if isinstance(own, str) and own else str(customer["id"])


def assert_cells_match_api(
    object_name: str,
    table: pl.DataFrame,
    api_rows: Sequence[Mapping[str, Any]],
    customers: Sequence[Mapping[str, Any]],
) -> None:
    """Every API field is kept under its own name — those this tool does not know too — with
    the API's value; a customer's `external_id` is its own key, a child's its Pivotal id, and
    a child's `customer_external_id` its customer's `external_id`."""
    by_id = {row["id"]: row for row in api_rows}
    keys = {customer["id"]: export_key(customer) for customer in customers}
    expected_columns = {name for name in api_rows[0] if name != "object"}
    expected_columns.add("external_id")
    if object_name != "customer":
        expected_columns.add("customer_external_id")
    assert set(table.columns) == expected_columns
    for row in table.to_dicts():
        source = by_id[row["id"]]
        for name, value in row.items():
            if name == "external_id":
                expected = keys[source["id"]] if object_name == "customer" else source["id"]
                assert value == expected
            elif name == "customer_external_id":
                assert value == keys[source["customer_id"]]
            elif name == "metadata" or name in NESTED:
                assert json.loads(value) == source[name], name
            elif name in DATETIMES[object_name]:
                assert api_text(value) == source[name], name
            else:
                assert value == source[name], name


async def seed_groups(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    clock: ManualClock,
    path: str,
    groups: Sequence[int],
    body: Any,
    start_ms: int,
) -> list[dict[str, Any]]:
    """Objects in tie groups (`groups` oldest first), group k all in millisecond start_ms + k;
    `body(i)` is the i-th object's body, counted over all groups."""
    made: list[dict[str, Any]] = []
    for offset, size in enumerate(groups):
        at_ms(clock, start_ms + offset)
        first = len(made)
        made += await asyncio.gather(
            *(create(http, sandbox, path, body(first + i)) for i in range(size))
        )
    return made


def pages(rows: int) -> int:
    """Requests for a complete walk of `rows` rows when no two share a created_at.

    The first page reads 100 rows. A client cannot know that the boundary row has no twins the
    page left out, so every later page re-reads from `boundary + 1 ms`: it begins with the
    boundary row again and brings 99 new rows. An empty or short list is one request."""
    return max(1, math.ceil((rows - 1) / 99))


# -- the samples' workspace ------------------------------------------------------------------


@pytest_asyncio.fixture
async def samples_workspace(either_sandbox: Sandbox, tmp_path: Path) -> Sandbox:
    """The samples imported, into the sandbox in each of its modes."""
    outcome = await run_import(import_settings(either_sandbox, tmp_path))
    assert outcome.exit_code == 0, outcome.error
    return either_sandbox


async def test_samples_export_to_typed_parquet(samples_workspace: Sandbox, tmp_path: Path) -> None:
    settings = export_settings(samples_workspace, tmp_path)

    outcome = await run_export(settings)

    assert outcome.exit_code == 0, outcome.error
    assert outcome.counts == {"customer": 50, "contact": 100, "onboarding": 40}
    assert outcome.warnings == []
    assert outcome.workspace == WORKSPACE
    assert outcome.requests == 1 + 1 + 50 + 1  # /me, a page, a walk per customer, a page
    assert sorted(path.name for path in settings.out_dir.iterdir()) == [
        ".bulk-export.sqlite",
        "contacts.parquet",
        "customers.parquet",
        "manifest.json",
        "onboardings.parquet",
    ]
    for object_name in FILES:
        table = read(settings.out_dir, object_name)
        schema = table.schema
        for name in DATETIMES[object_name]:
            assert schema[name] == pl.Datetime("ms", "UTC"), name
        for name in BOOLEANS[object_name]:
            assert schema[name] == pl.Boolean, name
        for name in INTEGERS[object_name]:
            assert schema[name] == pl.Int64, name
        for name in LISTS[object_name]:
            assert schema[name] == pl.List(pl.String), name
        assert schema["external_id"] == schema["id"] == pl.String
        expected = live(samples_workspace, object_name)
        assert table.height == len(expected)
        assert_exactly_the_live_rows(table, expected)
        assert_cells_match_api(object_name, table, expected, live(samples_workspace, "customer"))

    customers = read(settings.out_dir, "customer")
    assert customers.schema["metadata"] == pl.String
    metadata = {row["id"]: json.loads(row["metadata"]) for row in customers.to_dicts()}
    assert any(isinstance(m.get("languages"), list) for m in metadata.values())  # nested JSON
    # the samples' own keys (`00329`), which the admin's spreadsheet holds
    samples_keys = pl.read_csv(SAMPLES / "customers.csv", infer_schema=False)["external_id"]
    assert sorted(customers["external_id"].to_list()) == sorted(samples_keys.to_list())
    for child in ("contact", "onboarding"):
        children = read(settings.out_dir, child)
        assert set(children["customer_id"].to_list()) <= set(customers["id"].to_list())
        assert set(children["customer_external_id"].to_list()) <= set(samples_keys.to_list())


async def test_the_manifest_describes_the_export(
    samples_workspace: Sandbox, tmp_path: Path
) -> None:
    settings = export_settings(samples_workspace, tmp_path)
    before = datetime.now(UTC)

    await run_export(settings)

    manifest = json.loads((settings.out_dir / "manifest.json").read_text("utf-8"))
    exported_at = datetime.fromisoformat(manifest.pop("exported_at"))
    assert before - timedelta(seconds=1) <= exported_at <= datetime.now(UTC)
    organization_id = manifest.pop("organization_id")
    assert isinstance(organization_id, str) and organization_id
    assert manifest == {
        "workspace": WORKSPACE,
        "format": "parquet",
        "counts": {"customers": 50, "contacts": 100, "onboardings": 40},
        "files": {
            "customers": "customers.parquet",
            "contacts": "contacts.parquet",
            "onboardings": "onboardings.parquet",
        },
        "warnings": [],
        "tool": {"name": "bulk", "version": __version__},
    }


async def test_csv_export_writes_lists_as_json_arrays(
    samples_workspace: Sandbox, tmp_path: Path
) -> None:
    settings = export_settings(samples_workspace, tmp_path, file_format="csv")

    outcome = await run_export(settings)

    assert outcome.exit_code == 0
    assert outcome.counts == {"customer": 50, "contact": 100, "onboarding": 40}
    manifest = json.loads((settings.out_dir / "manifest.json").read_text("utf-8"))
    assert manifest["format"] == "csv"
    assert manifest["files"]["contacts"] == "contacts.csv"
    for object_name in FILES:
        with (settings.out_dir / f"{FILES[object_name]}.csv").open(encoding="utf-8") as file:
            lines = list(csv.DictReader(file))
        expected = {row["id"]: row for row in live(samples_workspace, object_name)}
        keys = {row["id"]: export_key(row) for row in live(samples_workspace, "customer")}
        assert len(lines) == len(expected)
        assert {line["id"] for line in lines} == set(expected)
        for line in lines:
            source = expected[line["id"]]
            for name in LISTS[object_name]:
                assert line[name].startswith("[")
                assert json.loads(line[name]) == source[name]
            for name in BOOLEANS[object_name]:
                assert line[name] == ("true" if source[name] else "false")
            for name in DATETIMES[object_name]:
                assert line[name] == (source[name] or "")
                assert line[name] == "" or TIMESTAMP.match(line[name])
            if object_name == "customer":
                assert json.loads(line["metadata"]) == source["metadata"]
                assert line["external_id"] == keys[source["id"]]
            else:
                assert line["external_id"] == source["id"]
                assert line["customer_id"] == source["customer_id"]
                assert line["customer_external_id"] == keys[source["customer_id"]]
    tagged = pl.read_csv(settings.out_dir / "customers.csv", infer_schema=False)
    assert '["enterprise", "amer", "vip"]' in tagged["tags"].to_list()


WRITABLE = {
    schema.object: tuple(f.name for f in schema.writable() if f.name != "customer_id")
    for schema in (CUSTOMER, CONTACT, ONBOARDING)
}
"""The fields an import sets: all of an object's documented fields but the read-only ones."""


def fields(record: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {name: record[name] for name in names}


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
async def test_an_export_folder_reimports_into_another_workspace(
    samples_workspace: Sandbox, http: aiohttp.ClientSession, tmp_path: Path, file_format: str
) -> None:
    """Every record comes back with every field; a customer keeps its own
    `metadata.external_id`, and one that had none (made outside `bulk`) gets its source id."""
    sandbox = samples_workspace
    hand_made = await create(http, sandbox, "/customers", {"name": "Hand Made", "tags": ["x"]})
    contact = {"name": "Pat", "email": "pat@hand.example", "labels": ["x"]}
    await create(http, sandbox, f"/customers/{hand_made['id']}/contacts", contact)
    onboarding = {"customer_id": hand_made["id"], "name": "Hand rollout"}
    await create(http, sandbox, "/onboardings", onboarding)
    settings = export_settings(sandbox, tmp_path, file_format=file_format)
    await run_export(settings)
    target = "globex"
    reimport = ImportSettings(
        connection=ConnectionSettings(api_key=f"pivotal_{target}", base_url=sandbox.base_url),
        folders=(settings.out_dir,),
        checkpoint=tmp_path / "reimport.sqlite",
        quiet=True,
    )

    outcome = await run_import(reimport)

    assert outcome.exit_code == 0, outcome.error
    created = {name: c.created for name, c in outcome.summary.passes.items()}
    assert created == {"customers": 51, "contacts": 101, "onboardings": 41}
    source = {name: sandbox.objects(WORKSPACE, name) for name in FILES}
    copied = {name: sandbox.objects(target, name) for name in FILES}
    by_key = {row["metadata"]["external_id"]: row for row in copied["customer"]}
    assert len(by_key) == len(copied["customer"]) == 51
    copy_of: dict[str, str] = {}
    for original in source["customer"]:
        metadata = original["metadata"] or {}
        own = metadata.get("external_id")
        copy = by_key[own or original["id"]]
        expected_metadata = metadata if own else {**metadata, "external_id": original["id"]}
        assert copy["metadata"] == expected_metadata
        names = [name for name in WRITABLE["customer"] if name != "metadata"]
        assert fields(copy, names) == fields(original, names)
        copy_of[original["id"]] = copy["id"]

    def children(name: str, rows: list[dict[str, Any]], parent: Mapping[str, str]) -> Any:
        key = "email" if name == "contact" else "name"
        return {(parent[row["customer_id"]], row[key]): fields(row, WRITABLE[name]) for row in rows}

    same = {copy: copy for copy in copy_of.values()}
    for name in ("contact", "onboarding"):
        assert len(copied[name]) == len(source[name])
        assert children(name, copied[name], same) == children(name, source[name], copy_of)


async def test_soft_deleted_rows_and_children_of_deleted_customers_are_absent(
    samples_workspace: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    sandbox = samples_workspace
    contacts = sandbox.objects(WORKSPACE, "contact")
    onboardings = sandbox.objects(WORKSPACE, "onboarding")
    with_both = next(
        c["customer_id"]
        for c in contacts
        if any(o["customer_id"] == c["customer_id"] for o in onboardings)
    )
    orphaned = {row["id"] for row in contacts + onboardings if row["customer_id"] == with_both}
    deleted_contact = next(c for c in contacts if c["customer_id"] != with_both)["id"]
    deleted_onboarding = next(o for o in onboardings if o["customer_id"] != with_both)["id"]
    for path in (
        f"/customers/{with_both}",
        f"/contacts/{deleted_contact}",
        f"/onboardings/{deleted_onboarding}",
    ):
        assert (await api(http, sandbox, "DELETE", path)).status == 200
    settings = export_settings(sandbox, tmp_path)

    outcome = await run_export(settings)

    assert outcome.exit_code == 0
    gone = {with_both, deleted_contact, deleted_onboarding} | orphaned
    exported: set[str] = set()
    for object_name in FILES:
        table = read(settings.out_dir, object_name)
        assert_exactly_the_live_rows(table, live(sandbox, object_name))
        exported |= set(table["id"].to_list())
        assert outcome.counts[object_name] == len(live(sandbox, object_name))
    assert exported & gone == set()
    assert outcome.counts["customer"] == 49
    assert outcome.counts["contact"] == 100 - 1 - sum(
        c["customer_id"] == with_both for c in contacts
    )


async def test_progress_lines_for_each_pass(samples_workspace: Sandbox, tmp_path: Path) -> None:
    stream = io.StringIO()
    settings = export_settings(samples_workspace, tmp_path)

    await run_export(settings, ProgressFactory(stream=stream))

    assert stream.getvalue().splitlines() == [
        "customers: 0 rows",
        "customers: 50 rows",
        "onboardings: 0 rows",
        "onboardings: 40 rows",
        "contacts: 0/50 customers",
        "contacts: 50/50 customers",
    ]


async def test_a_finished_export_run_again_exports_afresh(
    samples_workspace: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    sandbox = samples_workspace
    settings = export_settings(sandbox, tmp_path)
    first = await run_export(settings)
    first_manifest = json.loads((settings.out_dir / "manifest.json").read_text("utf-8"))
    removed = sandbox.objects(WORKSPACE, "customer")[0]["id"]
    assert (await api(http, sandbox, "DELETE", f"/customers/{removed}")).status == 200
    added = await create(http, sandbox, "/customers", {"name": "Newcomer"})
    gets = sandbox.stats.methods["GET"]

    again = await run_export(settings)

    assert again.exit_code == 0
    assert again.requests == sandbox.stats.methods["GET"] - gets == first.requests
    customers = read(settings.out_dir, "customer")
    assert_exactly_the_live_rows(customers, live(sandbox, "customer"))
    assert added["id"] in customers["id"].to_list()
    assert removed not in customers["id"].to_list()
    for child in ("contact", "onboarding"):
        assert_exactly_the_live_rows(read(settings.out_dir, child), live(sandbox, child))
    manifest = json.loads((settings.out_dir / "manifest.json").read_text("utf-8"))
    assert manifest["exported_at"] >= first_manifest["exported_at"]
    assert manifest["counts"]["customers"] == 50
    assert not (settings.out_dir / ".parts").exists()


async def test_an_empty_workspace_exports_empty_typed_files(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = export_settings(sandbox, tmp_path, key="pivotal_empty")

    outcome = await run_export(settings)

    assert outcome.exit_code == 0
    assert outcome.counts == {"customer": 0, "contact": 0, "onboarding": 0}
    assert outcome.requests == 1 + 1 + 0 + 1  # /me, one empty page of each list
    contacts = read(settings.out_dir, "contact")
    assert contacts.height == 0
    assert contacts.schema["labels"] == pl.List(pl.String)
    assert contacts.schema["created_at"] == pl.Datetime("ms", "UTC")
    assert "customer_external_id" in contacts.columns


# -- ties, warnings, requests ----------------------------------------------------------------


async def test_a_tie_heavy_workspace_exports_every_row_exactly_once(
    timed: Sandbox, clock: ManualClock, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    statuses = lambda i: {"name": f"c{i}", "status": CUSTOMER_STATUSES[i % 5]}  # noqa: E731
    # 330 customers in groups of up to 100 that share a created_at, across the page boundaries
    customers = await seed_groups(
        http, timed, clock, "/customers", [33, 60, 1, 99, 100, 37], statuses, START_MS
    )
    assert len(customers) == 330
    many = customers[0]["id"]  # 150 contacts of one customer, ties across its boundaries
    await seed_groups(
        http,
        timed,
        clock,
        f"/customers/{many}/contacts",
        [20, 70, 60],
        lambda i: {"name": f"p{i}", "email": f"p{i}@many.example"},
        START_MS + 100,
    )
    some = customers[1:200:3]  # and 1 to 3 contacts each for some others, all in one ms
    at_ms(clock, START_MS + 200)
    await asyncio.gather(
        *(
            create(
                http,
                timed,
                f"/customers/{c['id']}/contacts",
                {"name": f"q{j}", "email": f"q{j}@x.example"},
            )
            for k, c in enumerate(some)
            for j in range(1 + k % 3)
        )
    )
    # one onboarding per customer: a 100 and a 200 sharing a created_at each, which only the
    # state split can read (50 per state)
    await seed_groups(
        http,
        timed,
        clock,
        "/onboardings",
        [30, 200, 100],
        lambda i: {"customer_id": customers[i]["id"], "state": ONBOARDING_STATES[i % 4]},
        START_MS + 300,
    )
    settings = export_settings(timed, tmp_path, part_rows=50)

    outcome = await run_export(settings)

    assert outcome.exit_code == 0, outcome.warnings
    assert outcome.warnings == []
    for object_name in FILES:
        table = read(settings.out_dir, object_name)
        expected = live(timed, object_name)
        assert_exactly_the_live_rows(table, expected)
        assert table.height == len(expected)
        assert outcome.counts[object_name] == len(expected)
    contacts = 150 + sum(1 + k % 3 for k in range(len(some)))
    assert outcome.counts == {"customer": 330, "contact": contacts, "onboarding": 330}


async def test_requests_are_the_minimum_for_a_tie_free_workspace(
    timed: Sandbox, clock: ManualClock, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    customers = []
    for i in range(250):  # every object in its own millisecond
        at_ms(clock, START_MS + i)
        customers.append(await create(http, timed, "/customers", {"name": f"c{i}"}))
    for i, customer in enumerate(customers):
        at_ms(clock, START_MS + 1000 + i)
        for j in range(i % 3):
            clock.advance(0.01)
            body = {"name": f"p{j}", "email": f"p{j}@c{i}.example"}
            await create(http, timed, f"/customers/{customer['id']}/contacts", body)
    for i in range(120):
        at_ms(clock, START_MS + 5000 + i)
        await create(http, timed, "/onboardings", {"customer_id": customers[i]["id"]})
    gets = timed.stats.methods["GET"]

    outcome = await run_export(export_settings(timed, tmp_path))

    assert outcome.exit_code == 0
    assert outcome.counts == {"customer": 250, "contact": 249, "onboarding": 120}
    minimum = 1 + pages(250) + 250 + pages(120)  # /me, customers, one walk each, onboardings
    assert minimum == 1 + 3 + 250 + 2
    assert outcome.requests == minimum
    assert timed.stats.methods["GET"] - gets == minimum
    assert outcome.retries == 0


async def test_onboardings_over_a_page_in_one_ms_are_recovered_by_customer(
    timed: Sandbox, clock: ManualClock, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    customers = await seed_groups(
        http, timed, clock, "/customers", [1] * 150, lambda i: {"name": f"c{i}"}, START_MS
    )
    await seed_groups(
        http,
        timed,
        clock,
        "/onboardings",
        [150],
        lambda i: {"customer_id": customers[i]["id"]},
        START_MS + 1000,
    )
    settings = export_settings(timed, tmp_path)

    outcome = await run_export(settings)

    assert outcome.warnings == []
    assert outcome.counts["onboarding"] == 150
    assert_exactly_the_live_rows(read(settings.out_dir, "onboarding"), live(timed, "onboarding"))


async def interrupted_after(
    sandbox: Sandbox, requests: int, settings: ExportSettings, signum: int = signal.SIGINT
) -> Any:
    """Run the export and press Ctrl-C (or send `signum`) once the sandbox has admitted
    `requests` more GETs."""
    target = sandbox.stats.methods["GET"] + requests

    async def ctrl_c() -> None:
        while sandbox.stats.methods["GET"] < target:
            await asyncio.sleep(0.001)
        os.kill(os.getpid(), signum)

    interrupter = asyncio.create_task(ctrl_c())
    outcome = await run_export(settings)
    await interrupter
    return outcome


async def test_an_interrupted_csv_export_resumes_without_reading_anything_twice(
    timed: Sandbox, clock: ManualClock, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    customers = await seed_groups(
        http,
        timed,
        clock,
        "/customers",
        [50, 100, 99, 1],
        lambda i: {"name": f"c{i}", "status": CUSTOMER_STATUSES[i % 5]},
        START_MS,
    )
    at_ms(clock, START_MS + 100)
    for customer in customers:
        body = {"name": "P", "email": "p@example.com"}
        await create(http, timed, f"/customers/{customer['id']}/contacts", body)
    settings = export_settings(timed, tmp_path, file_format="csv", part_rows=20)
    gets = timed.stats.methods["GET"]

    stopped = await interrupted_after(timed, 120, settings)  # in the contacts pass

    assert stopped.exit_code == 130
    assert (
        stopped.error
        == "Interrupted. The checkpoint is saved; run the same command again to resume."
    )
    assert stopped.counts["customer"] == 250
    assert 0 < stopped.counts["contact"] < 250
    assert not (settings.out_dir / "manifest.json").exists()
    with pytest.raises(UsageError, match="This export was started as csv, not parquet"):
        await run_export(export_settings(timed, tmp_path, part_rows=20))

    resumed = await run_export(settings)

    assert resumed.exit_code == 0
    assert resumed.counts == {"customer": 250, "contact": 250, "onboarding": 0}
    for object_name in FILES:
        table = read(settings.out_dir, object_name, "csv")
        assert_exactly_the_live_rows(table, live(timed, object_name))
    # a clean stop loses nothing: both runs together cost what one uninterrupted run costs:
    # /me; 4 customer pages and the 5 status requests that split the page-filling 100; a walk
    # per customer; one onboarding page
    uninterrupted = 1 + (4 + 5) + 250 + 1
    assert stopped.requests + resumed.requests == uninterrupted
    assert timed.stats.methods["GET"] - gets == uninterrupted


async def test_an_export_an_older_bulk_began_starts_again(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Its part files lack the children's `customer_id`: merged, every child would be dropped."""
    for i in range(30):
        customer = await create(http, sandbox, "/customers", {"name": f"c{i}"})
        body = {"name": "P", "email": f"p{i}@example.com"}
        await create(http, sandbox, f"/customers/{customer['id']}/contacts", body)
    settings = export_settings(sandbox, tmp_path, part_rows=5)
    stopped = await interrupted_after(sandbox, 1 + 1 + 1 + 10, settings)  # in the contacts pass
    assert stopped.exit_code == 130
    checkpoint = Checkpoint(settings.checkpoint_file)
    document = checkpoint.export_document()
    assert document is not None and document.pop("parts_layout") == 2
    checkpoint.save_export_document(document)  # as the older bulk saved it
    checkpoint.close()

    resumed = await run_export(settings)

    assert resumed.exit_code == 0
    assert resumed.requests == 1 + 1 + 30 + 1  # everything again: /me, pages, walks, a page
    assert resumed.counts == {"customer": 30, "contact": 30, "onboarding": 0}
    contacts = read(settings.out_dir, "contact")
    assert sorted(contacts["customer_id"].to_list()) == sorted(
        row["customer_id"] for row in sandbox.objects(WORKSPACE, "contact")
    )


async def test_sigterm_stops_the_export_with_143_and_the_next_run_finishes_it(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await asyncio.gather(
        *(create(http, sandbox, "/customers", {"name": f"C{n}"}) for n in range(150))
    )
    settings = export_settings(sandbox, tmp_path, part_rows=50)

    stopped = await interrupted_after(sandbox, 20, settings, signal.SIGTERM)  # in the contacts

    assert stopped.exit_code == 143, stopped.error
    assert stopped.error == (
        "Interrupted. The checkpoint is saved; run the same command again to resume."
    )
    assert not (settings.out_dir / "manifest.json").exists()
    resumed = await run_export(settings)
    assert resumed.exit_code == 0, resumed.error
    assert resumed.counts["customer"] == 150


async def test_a_customer_deleted_before_its_contacts_walk_does_not_fail_the_export(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    for i in range(150):
        customer = await create(http, sandbox, "/customers", {"name": f"c{i}"})
        body = {"name": "P", "email": f"p{i}@example.com"}
        await create(http, sandbox, f"/customers/{customer['id']}/contacts", body)
    settings = export_settings(sandbox, tmp_path, part_rows=20)
    stopped = await interrupted_after(sandbox, 1 + 2 + 70, settings)  # in the contacts pass
    assert stopped.exit_code == 130
    last = sandbox.objects(WORKSPACE, "customer")[0]  # the oldest: its walk comes last
    assert (await api(http, sandbox, "DELETE", f"/customers/{last['id']}")).status == 200

    resumed = await run_export(settings)

    assert resumed.exit_code == 0
    assert resumed.counts == {"customer": 150, "contact": 149, "onboarding": 0}
    contacts = read(settings.out_dir, "contact")
    assert last["id"] not in contacts["customer_external_id"].to_list()


async def test_every_exported_onboarding_has_its_customer_in_the_export(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    for i in range(150):
        customer = await create(http, sandbox, "/customers", {"name": f"c{i}"})
        await create(http, sandbox, "/onboardings", {"customer_id": customer["id"]})
    settings = export_settings(sandbox, tmp_path, part_rows=20)
    stopped = await interrupted_after(sandbox, 1 + 2 + 30, settings)  # in the contacts pass
    assert stopped.exit_code == 130
    late = await create(http, sandbox, "/customers", {"name": "Late"})
    await create(http, sandbox, "/onboardings", {"customer_id": late["id"]})

    resumed = await run_export(settings)

    assert resumed.exit_code == 0
    customers = set(read(settings.out_dir, "customer")["external_id"].to_list())
    parents = set(read(settings.out_dir, "onboarding")["customer_external_id"].to_list())
    assert parents - customers == set()


# -- through the command line: summary, report, exit codes ----------------------------------


def cli_export(sandbox: Sandbox, out_dir: Path, *options: str) -> Any:
    arguments = ["export", str(out_dir), "--base-url", sandbox.base_url, "--quiet", *options]
    return CliRunner().invoke(main, arguments, env={"PIVOTAL_API_KEY": KEY}, catch_exceptions=False)


def seed_in_thread(sandbox: Sandbox, clock: ManualClock, active: int, churned: int) -> None:
    """Through HTTP into a threaded sandbox: 30 customers one ms apart, then `active` plus
    `churned` more sharing one millisecond."""

    async def seed() -> None:
        async with aiohttp.ClientSession() as http:
            for i in range(30):
                at_ms(clock, START_MS + i)
                await create(http, sandbox, "/customers", {"name": f"c{i}"})
            at_ms(clock, START_MS + 100)
            for i, status in enumerate(["active"] * active + ["churned"] * churned):
                body = {"name": f"t{i}", "status": status}
                await create(http, sandbox, "/customers", body)

    asyncio.run(seed())


def test_the_summary_and_report_of_a_complete_export_exit_0(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    async def seed() -> None:
        async with aiohttp.ClientSession() as http:
            for i in range(12):
                customer = await create(http, threaded_sandbox, "/customers", {"name": f"c{i}"})
                await create(
                    http,
                    threaded_sandbox,
                    f"/customers/{customer['id']}/contacts",
                    {"name": "P", "email": f"p@c{i}.example"},
                )
            await create(http, threaded_sandbox, "/onboardings", {"customer_id": customer["id"]})

    asyncio.run(seed())
    report = tmp_path / "report.json"

    result = cli_export(threaded_sandbox, tmp_path / "out", "--report", str(report))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split() for line in lines[:3]] == [
        ["customers", "12"],
        ["contacts", "12"],
        ["onboardings", "1"],
    ]
    assert lines[3].startswith("requests 15, retries 0, rate-limited 0, elapsed ")
    document = json.loads(report.read_text("utf-8"))
    assert isinstance(document.pop("elapsed_s"), float)
    assert document == {
        "counts": {"customer": 12, "contact": 12, "onboarding": 1},
        "requests": 15,
        "retries": 0,
        "rate_limited": 0,
        "warnings": [],
        "exit_code": 0,
        "workspace": WORKSPACE,
    }
    assert "Warning" not in result.stderr


def test_an_unreachable_group_is_a_warning_with_exit_1(tmp_path: Path) -> None:
    clock = ManualClock()
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, clock=clock)
    report = tmp_path / "report.json"
    with sandbox_in_thread(config) as sandbox:
        seed_in_thread(sandbox, clock, 130, 30)
        result = cli_export(sandbox, tmp_path / "out", "--report", str(report))
        exported = pl.read_parquet(tmp_path / "out" / "customers.parquet")
        everyone = {row["id"] for row in sandbox.objects(WORKSPACE, "customer")}

    message = (
        "100 or more customers with status=active share created_at "
        f"{format_epoch_ms(START_MS + 100)}; the API cannot page through them: 100 were read, "
        "any more are missing"
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"Warning: {message}"]
    document = json.loads(report.read_text("utf-8"))
    assert document["exit_code"] == 1
    assert document["warnings"] == [message]
    assert document["counts"]["customer"] == 190 - 30
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text("utf-8"))
    assert manifest["warnings"] == [message]
    ids = exported["id"].to_list()
    assert len(ids) == len(set(ids)) == 160
    assert set(ids) < everyone


def test_a_page_filling_group_without_a_full_status_exits_0(tmp_path: Path) -> None:
    """The same 160 customers in one millisecond, but no status holds a page of them: the
    status split reaches them all."""
    clock = ManualClock()
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, clock=clock)
    with sandbox_in_thread(config) as sandbox:
        seed_in_thread(sandbox, clock, 90, 70)
        result = cli_export(sandbox, tmp_path / "out")
        everyone = {row["id"] for row in sandbox.objects(WORKSPACE, "customer")}

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    ids = pl.read_parquet(tmp_path / "out" / "customers.parquet")["id"].to_list()
    assert len(ids) == len(set(ids)) == 190
    assert set(ids) == everyone


def test_a_refused_key_exits_3_and_keeps_the_checkpoint(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    threaded_sandbox.revoke_key(KEY)

    result = cli_export(threaded_sandbox, tmp_path / "out")

    assert result.exit_code == 3, result.output
    [error] = result.stderr.splitlines()
    assert error.startswith("Error: The API refused the export: 401 api_key_revoked: ")
    assert error.endswith("The checkpoint is saved; run the same command again to resume.")
    assert [line.split() for line in result.stdout.splitlines()[:3]] == [
        ["customers", "0"],
        ["contacts", "0"],
        ["onboardings", "0"],
    ]
    assert (tmp_path / "out" / ".bulk-export.sqlite").exists()
    assert KEY not in result.output


def test_the_refusal_message_reads_as_one_sentence_each(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    threaded_sandbox.revoke_key(KEY)

    result = cli_export(threaded_sandbox, tmp_path / "out")

    assert result.stderr.splitlines() == [
        "Error: The API refused the export: 401 api_key_revoked: This API key has been revoked. "
        "Check --api-key or PIVOTAL_API_KEY. "
        "The checkpoint is saved; run the same command again to resume."
    ]
