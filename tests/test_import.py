"""`bulk import` end to end against a real sandbox on loopback: samples, re-runs, edits, faults,
rate limits."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from bulk.importing.importer import ImportOutcome, run_import
from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox
from bulk.settings import ConnectionSettings, ImportSettings

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
WORKSPACE = "acme"
KEY = f"pivotal_{WORKSPACE}"


def import_settings(
    sandbox: Sandbox, tmp_path: Path, *folders: Path, **options: Any
) -> ImportSettings:
    connection = ConnectionSettings(api_key=KEY, base_url=sandbox.base_url, concurrency=4)
    return ImportSettings(
        connection=connection,
        folders=folders or (SAMPLES,),
        checkpoint=tmp_path / "import.sqlite",
        quiet=True,
        **options,
    )


def source_rows(name: str, folder: Path = SAMPLES) -> list[dict[str, str | None]]:
    return pl.read_csv(folder / f"{name}.csv", infer_schema=False).to_dicts()


def assert_workspace_matches_samples(sandbox: Sandbox, folder: Path = SAMPLES) -> None:
    """Every source row exists exactly once, with its fields and under the right customer."""
    customers = sandbox.objects(WORKSPACE, "customer")
    contacts = sandbox.objects(WORKSPACE, "contact")
    onboardings = sandbox.objects(WORKSPACE, "onboarding")
    source_customers = source_rows("customers", folder)
    source_contacts = source_rows("contacts", folder)
    source_onboardings = source_rows("onboardings", folder)
    assert len(customers) == len(source_customers)
    assert len(contacts) == len(source_contacts)
    assert len(onboardings) == len(source_onboardings)

    by_external_id = {c["metadata"]["external_id"]: c for c in customers}
    assert set(by_external_id) == {row["external_id"] for row in source_customers}
    for row in source_customers:
        customer = by_external_id[row["external_id"]]
        assert customer["name"] == row["name"]
        assert customer["plan"] == row["plan"]
        if row["slug"]:
            assert customer["slug"] == row["slug"]
        if row["domain"]:
            assert customer["domain"] == row["domain"].lower()
        if row["mrr"]:
            assert customer["mrr"] == int(row["mrr"])

    contact_by_email = {(c["customer_id"], c["email"]): c for c in contacts}
    assert len(contact_by_email) == len(contacts)
    for row in source_contacts:
        parent = by_external_id[row["customer_external_id"]]
        assert row["email"] is not None
        contact = contact_by_email[(parent["id"], row["email"].lower())]
        assert contact["name"] == row["name"]
        assert contact["phone"] == row["phone"]

    onboarding_by_customer = {o["customer_id"]: o for o in onboardings}
    assert len(onboarding_by_customer) == len(onboardings)
    for row in source_onboardings:
        onboarding = onboarding_by_customer[by_external_id[row["customer_external_id"]]["id"]]
        assert onboarding["name"] == row["name"]
        assert onboarding["phase"] == (row["phase"] or "before_getting_started")


def counts(outcome: ImportOutcome, column: str) -> dict[str, int]:
    return {name: getattr(c, column) for name, c in outcome.summary.passes.items()}


async def test_samples_import_end_to_end(sandbox: Sandbox, tmp_path: Path) -> None:
    outcome = await run_import(import_settings(sandbox, tmp_path))

    assert outcome.exit_code == 0, outcome.error
    assert counts(outcome, "created") == {"customers": 50, "contacts": 100, "onboardings": 40}
    assert counts(outcome, "failed") == {"customers": 0, "contacts": 0, "onboardings": 0}
    assert_workspace_matches_samples(sandbox)
    assert outcome.errors_file is None
    with (tmp_path / "import.results.csv").open(encoding="utf-8") as results:
        lines = list(csv.DictReader(results))
    assert len(lines) == 190
    assert {line["action"] for line in lines} == {"created"}
    assert all(line["id"] and line["display_id"] for line in lines)


async def test_rerunning_an_unchanged_source_sends_no_writes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = import_settings(sandbox, tmp_path)
    await run_import(settings)
    writes_before = sandbox.stats.writes

    outcome = await run_import(settings)

    assert outcome.exit_code == 0
    assert sandbox.stats.writes == writes_before
    assert counts(outcome, "unchanged") == {"customers": 50, "contacts": 100, "onboardings": 40}
    assert_workspace_matches_samples(sandbox)


async def test_one_edited_cell_sends_one_patch(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = tmp_path / "source"
    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("parquet", "*.py", "*.md"))
    settings = import_settings(sandbox, tmp_path, folder)
    await run_import(settings)
    customers = pl.read_csv(folder / "customers.csv", infer_schema=False)
    edited_id = customers["external_id"][3]
    customers = customers.with_columns(
        pl.when(pl.col("external_id") == edited_id)
        .then(pl.lit("enterprise-2027"))
        .otherwise(pl.col("plan"))
        .alias("plan")
    )
    customers.write_csv(folder / "customers.csv")
    posts, patches = sandbox.stats.methods["POST"], sandbox.stats.methods["PATCH"]

    outcome = await run_import(settings)

    assert outcome.exit_code == 0
    assert sandbox.stats.methods["POST"] == posts
    assert sandbox.stats.methods["PATCH"] == patches + 1
    assert counts(outcome, "updated") == {"customers": 1, "contacts": 0, "onboardings": 0}
    edited = [
        c
        for c in sandbox.objects(WORKSPACE, "customer")
        if c["metadata"]["external_id"] == edited_id
    ]
    assert [c["plan"] for c in edited] == ["enterprise-2027"]
    assert_workspace_matches_samples(sandbox, folder)


async def test_faults_including_committed_then_failed_writes_leave_an_exact_workspace(
    tmp_path: Path,
) -> None:
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, fault_rate=0.1, fault_seed=11)
    async with running_sandbox(config) as sandbox:
        outcome = await run_import(import_settings(sandbox, tmp_path))

        assert outcome.exit_code == 0, outcome.error
        assert counts(outcome, "failed") == {"customers": 0, "contacts": 0, "onboardings": 0}
        assert sandbox.stats.faults["error_after"] + sandbox.stats.faults["drop_after"] > 0
        assert sandbox.stats.replays > 0
        assert outcome.summary.retries > 0
        assert_workspace_matches_samples(sandbox)


async def test_import_stays_within_a_small_rate_window(tmp_path: Path) -> None:
    config = SandboxConfig(rate_limit=20, test_rate_limit=20, window_s=1.0)
    async with running_sandbox(config) as sandbox:
        outcome = await run_import(import_settings(sandbox, tmp_path, passes=("customers",)))

        assert outcome.exit_code == 0, outcome.error
        assert counts(outcome, "created") == {"customers": 50}
        assert sandbox.stats.rate_limited == 0
        assert outcome.summary.rate_limited == 0
