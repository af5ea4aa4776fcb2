"""`bulk migrate` against real sandboxes (also in `--extra-fields` mode, as a newer API): a round
trip keeps every object, parent and field, customers keep their own `metadata.external_id` (so
the admin's spreadsheet still matches the target), a killed migration resumes exactly, and a
workspace is never migrated into itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import polars as pl
import pytest
from click.testing import CliRunner
from helpers import SAMPLES, counts, create, import_settings

from bulk.cli import main
from bulk.display import format_table
from bulk.errors import UsageError
from bulk.exporting.exporter import run_export
from bulk.importing.importer import run_import
from bulk.migrate import MigrateOutcome, Reconciliation, run_migrate
from bulk.sandbox import Sandbox, SandboxConfig, sandbox_in_thread
from bulk.schema import CONTACT, CUSTOMER, ONBOARDING
from bulk.settings import (
    PASSES,
    ConnectionSettings,
    ExportSettings,
    ImportSettings,
    MigrateSettings,
)

pytest_plugins = ["sandbox_helpers"]

SOURCE_KEY = "pivotal_acme"
TARGET_KEY = "pivotal_globex"
SOURCE, TARGET = "acme", "globex"
VOLATILE = {
    "id",
    "display_id",
    "customer_id",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
}
"""Columns that differ between two workspaces holding the same data."""
SERVER_MADE = {
    "monthly_orders",
    "health_score",
    "health",
    "address",
    "integrations",
    "linkedin_url",
    "timezone",
    "checklist_progress",
    "risk_level",
}
"""The newer API's read-only fields (`--extra-fields`): each workspace makes its own."""


def connection(sandbox: Sandbox, key: str) -> ConnectionSettings:
    return ConnectionSettings(api_key=key, base_url=sandbox.base_url, concurrency=4)


def migrate_settings(sandbox: Sandbox, workdir: Path) -> MigrateSettings:
    return MigrateSettings(
        source=connection(sandbox, SOURCE_KEY),
        target=connection(sandbox, TARGET_KEY),
        workdir=workdir,
        quiet=True,
    )


def comparable(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """An export without its ids, timestamps and server-made fields; children keyed by their
    parent's name; customers' `external_id` and `metadata` compared whole."""
    customers = pl.read_parquet(folder / "customers.parquet")
    name_of = dict(zip(customers["id"], customers["name"], strict=True))
    tables = {}
    for name in ("customers", "contacts", "onboardings"):
        rows = []
        for row in pl.read_parquet(folder / f"{name}.parquet").to_dicts():
            if name != "customers":
                row["customer_name"] = name_of[row["customer_id"]]
                del row["external_id"]  # a child's is its Pivotal id
            else:
                row["metadata"] = json.loads(row["metadata"])
            rows.append({k: v for k, v in row.items() if k not in VOLATILE | SERVER_MADE})
        tables[name] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return tables


async def export_to(sandbox: Sandbox, key: str, folder: Path) -> None:
    outcome = await run_export(
        ExportSettings(connection=connection(sandbox, key), out_dir=folder, quiet=True)
    )
    assert outcome.exit_code == 0, outcome.error


def test_the_reconciliation_is_one_table_with_the_gaps() -> None:
    outcome = MigrateOutcome(
        1,
        [Reconciliation("customers", 1200, 1190, 10, 3), Reconciliation("contacts", 7, 7, 0, 0)],
    )

    assert outcome.render().splitlines() == [
        "object     source  target  missing  failed",
        "customers    1200    1190       10       3",
        "contacts        7       7        0       0",
    ]
    assert outcome.render() == format_table(
        ("object", "source", "target", "missing", "failed"),
        [("customers", 1200, 1190, 10, 3), ("contacts", 7, 7, 0, 0)],
    )


async def test_round_trip_keeps_every_object_and_parent(
    either_sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox = either_sandbox
    imported = await run_import(import_settings(sandbox, tmp_path))
    assert imported.exit_code == 0
    await export_to(sandbox, SOURCE_KEY, tmp_path / "export-a")

    outcome = await run_migrate(migrate_settings(sandbox, tmp_path / "work"))

    assert outcome.exit_code == 0, outcome.error
    assert [
        (r.object_type, r.source, r.target, r.missing, r.failed) for r in outcome.reconciliation
    ] == [("customers", 50, 50, 0, 0), ("contacts", 100, 100, 0, 0), ("onboardings", 40, 40, 0, 0)]
    await export_to(sandbox, TARGET_KEY, tmp_path / "export-b")
    assert comparable(tmp_path / "export-a") == comparable(tmp_path / "export-b")


async def test_rerunning_a_finished_migration_sends_no_writes(
    either_sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox = either_sandbox
    await run_import(import_settings(sandbox, tmp_path))
    settings = migrate_settings(sandbox, tmp_path / "work")
    await run_migrate(settings)
    writes = sandbox.stats.writes

    again = await run_migrate(settings)

    assert again.exit_code == 0
    assert sandbox.stats.writes == writes
    assert [r.target for r in again.reconciliation] == [50, 100, 40]


async def seed_customers_without_keys(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    """Customers made outside `bulk` (no `metadata.external_id`), with a contact and an
    onboarding each."""
    for body in (
        {"name": "Hand Made", "status": "active", "metadata": {"note": "by hand"}},
        {"name": "Tagged", "tags": ["new"]},
        {"name": "Bare"},
    ):
        customer = await create(http, sandbox, "/customers", body)
        contact = {"name": "Pat", "email": f"pat@{customer['slug']}.example", "labels": ["x"]}
        await create(http, sandbox, f"/customers/{customer['id']}/contacts", contact)
        onboarding = {"customer_id": customer["id"], "name": f"{body['name']} rollout"}
        await create(http, sandbox, "/onboardings", onboarding)


def fields(record: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: record[name] for name in names}


WRITABLE = {
    schema.object: tuple(f.name for f in schema.writable() if f.name != "customer_id")
    for schema in (CUSTOMER, CONTACT, ONBOARDING)
}


async def test_customers_keep_their_own_external_id_and_every_field(
    either_sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    sandbox = either_sandbox
    assert (await run_import(import_settings(sandbox, tmp_path))).exit_code == 0
    await seed_customers_without_keys(http, sandbox)

    outcome = await run_migrate(migrate_settings(sandbox, tmp_path / "work"))

    assert outcome.exit_code == 0, outcome.error
    source = {name: sandbox.objects(SOURCE, name) for name in WRITABLE}
    target = {name: sandbox.objects(TARGET, name) for name in WRITABLE}
    assert {name: len(rows) for name, rows in target.items()} == {
        "customer": 53,
        "contact": 103,
        "onboarding": 43,
    }
    by_key = {row["metadata"]["external_id"]: row for row in target["customer"]}
    assert len(by_key) == 53
    copy_of: dict[str, str] = {}  # source customer id -> target customer id
    for original in source["customer"]:
        metadata = original["metadata"] or {}
        own = metadata.get("external_id")
        # the admin's key where there is one; the source id only where there was none
        expected_metadata = metadata if own else {**metadata, "external_id": original["id"]}
        copy = by_key[own or original["id"]]
        assert copy["metadata"] == expected_metadata
        names = tuple(name for name in WRITABLE["customer"] if name != "metadata")
        assert fields(copy, names) == fields(original, names)
        copy_of[original["id"]] = copy["id"]

    def children(rows: list[dict[str, Any]], name: str, parent: Mapping[str, str]) -> Any:
        key = "email" if name == "contact" else "name"
        return {(parent[row["customer_id"]], row[key]): fields(row, WRITABLE[name]) for row in rows}

    for name in ("contact", "onboarding"):
        same = {copy: copy for copy in copy_of.values()}
        assert children(target[name], name, same) == children(source[name], name, copy_of)


def admins_import(sandbox: Sandbox, key: str, checkpoint: Path, passes: tuple[str, ...]) -> Any:
    """The admin's own spreadsheet (the samples, keyed by their external ids) into a workspace."""
    return run_import(
        ImportSettings(
            connection=connection(sandbox, key),
            folders=(SAMPLES,),
            checkpoint=checkpoint,
            passes=passes,
            quiet=True,
        )
    )


async def migrated_then_admins_import(
    sandbox: Sandbox, tmp_path: Path, passes: tuple[str, ...]
) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    """Import the spreadsheet into A, migrate A to B, import it into B with a checkpoint of its
    own; the outcome of that last import, and B's records just before it."""
    seeded = await admins_import(sandbox, SOURCE_KEY, tmp_path / "a.sqlite", passes)
    assert seeded.exit_code == 0, seeded.error
    migrated = await run_migrate(migrate_settings(sandbox, tmp_path / "work"))
    assert migrated.exit_code == 0, migrated.error
    before = {name: sandbox.objects(TARGET, name) for name in WRITABLE}

    outcome = await admins_import(sandbox, TARGET_KEY, tmp_path / "b.sqlite", passes)

    return outcome, before


async def test_the_admins_spreadsheet_matches_the_target_after_a_migration(
    either_sandbox: Sandbox, tmp_path: Path
) -> None:
    """SPEC `bulk migrate`: customers keep their `metadata.external_id`, "so the admin's own
    spreadsheet still matches the target": imported there with a checkpoint of its own, every
    row adopts its record, none is created or changed. Before, every customer row failed with
    `slug_taken` (the target's customers had the source ids as their keys) and every child
    was skipped; then, with the keys kept, a row whose body was byte for byte the
    migration's was answered as a replay of the migration's request (same key), read
    `created` (a later `bulk undo` would delete the migration's record), and its customer's
    onboardings were sent again: the migration's keys are its own now."""
    sandbox = either_sandbox

    outcome, before = await migrated_then_admins_import(sandbox, tmp_path, PASSES)

    assert outcome.exit_code == 0, outcome.error
    nothing = {"customers": 0, "contacts": 0, "onboardings": 0}
    for action in ("created", "updated", "failed", "skipped", "invalid"):
        assert counts(outcome, action) == nothing, action
    assert counts(outcome, "adopted") == {"customers": 50, "contacts": 100, "onboardings": 40}
    after = {name: sandbox.objects(TARGET, name) for name in WRITABLE}
    assert after == before  # the same records, every field, `updated_at` included: no PATCH


async def test_a_workspace_is_not_migrated_into_itself(sandbox: Sandbox, tmp_path: Path) -> None:
    same_key = MigrateSettings(
        source=connection(sandbox, SOURCE_KEY),
        target=connection(sandbox, SOURCE_KEY),
        workdir=tmp_path,
    )
    with pytest.raises(UsageError, match="name the same workspace"):
        await run_migrate(same_key)

    test_key_of_the_same = MigrateSettings(
        source=connection(sandbox, SOURCE_KEY),
        target=connection(sandbox, "pivotal_test_acme"),
        workdir=tmp_path,
    )
    with pytest.raises(UsageError, match="are the same workspace"):
        await run_migrate(test_key_of_the_same)
    assert sandbox.stats.writes == 0


def test_cli_prints_the_reconciliation_table(threaded_sandbox: Sandbox, tmp_path: Path) -> None:
    runner = CliRunner()
    imported = runner.invoke(
        main,
        [
            "import",
            str(SAMPLES),
            "--base-url",
            threaded_sandbox.base_url,
            "--api-key",
            SOURCE_KEY,
            "--quiet",
        ],
    )
    assert imported.exit_code == 0, imported.output

    result = runner.invoke(
        main,
        [
            "migrate",
            "--from-key",
            SOURCE_KEY,
            "--to-key",
            TARGET_KEY,
            "--from-url",
            threaded_sandbox.base_url,
            "--to-url",
            threaded_sandbox.base_url,
            "--workdir",
            str(tmp_path / "work"),
            "--quiet",
        ],
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "object       source  target  missing  failed",
        "customers        50      50        0       0",
        "contacts        100     100        0       0",
        "onboardings      40      40        0       0",
    ]
    assert result.stderr == ""


def test_killed_migrations_resume_exactly(tmp_path: Path) -> None:
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, latency_ms=10)
    with sandbox_in_thread(config) as sandbox:
        runner = CliRunner()
        seeded = runner.invoke(
            main,
            [
                "import",
                str(SAMPLES),
                "--base-url",
                sandbox.base_url,
                "--api-key",
                SOURCE_KEY,
                "--quiet",
                "--checkpoint",
                str(tmp_path / "seed.sqlite"),
            ],
        )
        assert seeded.exit_code == 0, seeded.output
        command = [
            sys.executable,
            "-m",
            "bulk",
            "migrate",
            "--from-key",
            SOURCE_KEY,
            "--to-key",
            TARGET_KEY,
            "--from-url",
            sandbox.base_url,
            "--to-url",
            sandbox.base_url,
            "--workdir",
            str(tmp_path / "work"),
            "--quiet",
        ]
        # once during the export (contacts walks are GETs), once during the import (POSTs)
        for method, extra in (("GET", 20), ("POST", 60)):
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            target = sandbox.stats.methods[method] + extra
            deadline = time.monotonic() + 60
            while sandbox.stats.methods[method] < target:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.002)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

        final = subprocess.run(command, capture_output=True, text=True, timeout=120)

        assert final.returncode == 0, final.stderr
        assert final.stdout.splitlines()[1] == "customers        50      50        0       0"
        target_customers = sandbox.objects("globex", "customer")
        assert len(target_customers) == 50
        assert len({c["metadata"]["external_id"] for c in target_customers}) == 50
        assert len(sandbox.objects("globex", "contact")) == 100
        assert len(sandbox.objects("globex", "onboarding")) == 40


def test_migrate_between_two_workspaces_of_the_embedded_sandbox(tmp_path: Path) -> None:
    runner = CliRunner()
    seeded = runner.invoke(main, ["import", str(SAMPLES), "--sandbox", "--quiet"])
    assert seeded.exit_code == 0, seeded.output

    result = runner.invoke(
        main,
        [
            "migrate",
            "--from-key",
            "pivotal_sandbox",
            "--to-key",
            "pivotal_copy",
            "--sandbox",
            "--workdir",
            str(tmp_path / "work"),
            "--quiet",
            "--report",
            str(tmp_path / "m.json"),
        ],
    )

    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "m.json").read_text())
    assert [(row["object_type"], row["target"]) for row in report["reconciliation"]] == [
        ("customers", 50),
        ("contacts", 100),
        ("onboardings", 40),
    ]
