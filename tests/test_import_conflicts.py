"""`slug_taken` and `email_taken` are resolved, not ignored: our own record is adopted, someone
else's is a conflict that fails the row and skips its children."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import polars as pl
from helpers import WORKSPACE, counts, create, import_settings

from bulk.importing.importer import run_import
from bulk.sandbox import Sandbox


def write_source(folder: Path) -> Path:
    folder.mkdir()
    (folder / "customers.csv").write_text(
        "external_id,name,plan\n001,Acme,gold\n002,Globex,silver\n", encoding="utf-8"
    )
    (folder / "contacts.csv").write_text(
        "customer_external_id,name,email\n001,Ann,Ann@Acme.com\n002,Bob,bob@globex.com\n",
        encoding="utf-8",
    )
    return folder


async def test_our_own_customer_and_contact_are_adopted_and_brought_up_to_date(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # A customer and contact made by an earlier import whose checkpoint was lost.
    acme = await create(
        http,
        sandbox,
        "/customers",
        {"name": "Acme", "plan": "bronze", "metadata": {"external_id": "001"}},
    )
    await create(
        http, sandbox, f"/customers/{acme['id']}/contacts", {"name": "Ann", "email": "ann@acme.com"}
    )
    source = write_source(tmp_path / "source")

    outcome = await run_import(import_settings(sandbox, tmp_path, source))

    assert outcome.exit_code == 0, outcome.error
    assert counts(outcome, "adopted") == {"customers": 1, "contacts": 1}
    assert counts(outcome, "created") == {"customers": 1, "contacts": 1}
    customers = {c["metadata"]["external_id"]: c for c in sandbox.objects(WORKSPACE, "customer")}
    assert set(customers) == {"001", "002"}
    assert customers["001"]["id"] == acme["id"]
    assert customers["001"]["plan"] == "gold"  # adopted, then patched to the source's value
    contacts = sandbox.objects(WORKSPACE, "contact")
    assert sorted(c["email"] for c in contacts) == ["ann@acme.com", "bob@globex.com"]
    results = pl.read_csv(tmp_path / "import.results.csv", infer_schema=False)
    assert results.filter(pl.col("external_id") == "001")["id"].to_list() == [acme["id"]]


async def test_someone_elses_slug_fails_the_row_and_skips_its_children(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    other = await create(
        http, sandbox, "/customers", {"name": "Acme", "metadata": {"external_id": "crm-77"}}
    )
    source = write_source(tmp_path / "source")

    outcome = await run_import(import_settings(sandbox, tmp_path, source))

    assert outcome.exit_code == 1
    assert counts(outcome, "failed") == {"customers": 1, "contacts": 0}
    assert counts(outcome, "skipped") == {"customers": 0, "contacts": 1}
    errors = pl.read_csv(tmp_path / "import.errors.csv", infer_schema=False).to_dicts()
    by_pass = {row["_pass"]: row for row in errors}
    assert by_pass["customers"]["_error_code"] == "slug_taken"
    assert by_pass["customers"]["_error_message"] == (
        f"slug 'acme' belongs to customer {other['id']} (external_id 'crm-77'), "
        "not to external_id '001'; give this row its own slug in a slug column"
    )
    assert by_pass["contacts"]["_error_code"] == "customer_not_imported"  # skipped
    assert by_pass["contacts"]["_error_message"].startswith("customer '001' is failed: slug 'acme'")
    assert len(sandbox.objects(WORKSPACE, "customer")) == 2  # theirs and Globex, no duplicate


async def test_children_can_name_an_existing_customer_by_pivotal_id_or_display_id(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    existing = await create(http, sandbox, "/customers", {"name": "Initech"})
    folder = tmp_path / "children"
    folder.mkdir()
    (folder / "contacts.csv").write_text(
        f"customer_id,name,email\n{existing['id']},Peter,peter@initech.com\n"
        f"{existing['display_id']},Milton,milton@initech.com\nc-nope,Bill,bill@initech.com\n",
        encoding="utf-8",
    )
    (folder / "onboardings.csv").write_text(
        f"customer_id,name,phase\n{existing['display_id']},Initech rollout,review\n",
        encoding="utf-8",
    )

    outcome = await run_import(import_settings(sandbox, tmp_path, folder))

    assert outcome.exit_code == 1
    assert counts(outcome, "created") == {"contacts": 2, "onboardings": 1}
    assert counts(outcome, "failed") == {"contacts": 1, "onboardings": 0}
    contacts = sandbox.objects(WORKSPACE, "contact")
    assert sorted(c["email"] for c in contacts) == ["milton@initech.com", "peter@initech.com"]
    assert {c["customer_id"] for c in contacts} == {existing["id"]}
    [onboarding] = sandbox.objects(WORKSPACE, "onboarding")
    assert (onboarding["customer_id"], onboarding["phase"]) == (existing["id"], "review")
    errors = pl.read_csv(tmp_path / "import.errors.csv", infer_schema=False).to_dicts()
    assert [(e["email"], e["_error_code"]) for e in errors] == [
        ("bill@initech.com", "customer_not_found")
    ]


async def test_customers_that_collide_at_once_are_all_adopted_by_one_walk(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Four workers meet `slug_taken` together: each waits for the one walk of the customers
    (an index still being filled would miss their holders and fail their rows)."""
    for number in range(1, 5):
        await create(
            http,
            sandbox,
            "/customers",
            {"name": f"Firm {number}", "plan": "old", "metadata": {"external_id": f"F{number}"}},
        )
    folder = tmp_path / "firms"
    folder.mkdir()
    lines = [f"F{number},Firm {number},new" for number in range(1, 5)]
    (folder / "customers.csv").write_text(
        "external_id,name,plan\n" + "\n".join(lines) + "\n", encoding="utf-8"
    )

    outcome = await run_import(import_settings(sandbox, tmp_path, folder))

    assert outcome.exit_code == 0, outcome.error
    assert counts(outcome, "adopted") == {"customers": 4}
    assert sorted(c["plan"] for c in sandbox.objects(WORKSPACE, "customer")) == ["new"] * 4
    get_lists = sandbox.stats.methods["GET"] - 1  # GET /me
    assert get_lists == 1  # one page of customers, walked once
