"""`bulk migrate` against real sandboxes: a round trip keeps every object and parent, a killed
migration resumes exactly, and a workspace is never migrated into itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from helpers import SAMPLES, import_settings

from bulk.cli import main
from bulk.display import format_table
from bulk.errors import UsageError
from bulk.exporting.exporter import run_export
from bulk.importing.importer import run_import
from bulk.migrate import MigrateOutcome, Reconciliation, run_migrate
from bulk.sandbox import Sandbox, SandboxConfig, sandbox_in_thread
from bulk.settings import ConnectionSettings, ExportSettings, MigrateSettings

SOURCE_KEY = "pivotal_acme"
TARGET_KEY = "pivotal_globex"
VOLATILE = {
    "external_id",
    "id",
    "display_id",
    "customer_external_id",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
}
"""Columns that differ between two workspaces holding the same data."""


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
    """An export without its ids and timestamps; children keyed by their parent's name."""
    customers = pl.read_parquet(folder / "customers.parquet")
    name_of = dict(zip(customers["id"], customers["name"], strict=True))
    tables = {}
    for name in ("customers", "contacts", "onboardings"):
        rows = []
        for row in pl.read_parquet(folder / f"{name}.parquet").to_dicts():
            if "customer_external_id" in row:
                row["customer_name"] = name_of[row["customer_external_id"]]
            metadata = json.loads(row.pop("metadata", None) or "{}")
            metadata.pop("external_id", None)  # each import records the identity it came from
            row["metadata"] = metadata if name == "customers" else None
            rows.append({k: v for k, v in row.items() if k not in VOLATILE})
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


async def test_round_trip_keeps_every_object_and_parent(sandbox: Sandbox, tmp_path: Path) -> None:
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
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await run_import(import_settings(sandbox, tmp_path))
    settings = migrate_settings(sandbox, tmp_path / "work")
    await run_migrate(settings)
    writes = sandbox.stats.writes

    again = await run_migrate(settings)

    assert again.exit_code == 0
    assert sandbox.stats.writes == writes
    assert [r.target for r in again.reconciliation] == [50, 100, 40]


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
