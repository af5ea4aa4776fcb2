"""Enum cells the docs do not list (issue 9): the client is tolerant, "unknown enum values pass
through". A value in the API's own spelling (`paused_billing`, a newer API's) is sent as it is
and the API decides, with one warning per file and column before anything is sent; a value not
even spelled so that folds to no documented one (`Actve!!`, `Paused Billing`) stays invalid.

Every test here failed before the change: the import reported every undocumented value invalid,
so a newer API's export did not import back into it (the malformed cases were invalid already;
they failed only on the message, which now says what a passed-through value must look like).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import polars as pl
import pytest
from helpers import KEY, WORKSPACE, bulk, create, import_settings

from bulk.importing.cells import UNSET, CellError, cell_parser
from bulk.importing.importer import run_import
from bulk.importing.mapping import load_mapping
from bulk.importing.rows import PlannedRow, RowPlanner
from bulk.importing.sources import SourceRecord
from bulk.migrate import run_migrate
from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox
from bulk.schema import CUSTOMER, ONBOARDING
from bulk.settings import ConnectionSettings, MigrateSettings

pytest_plugins = ["sandbox_helpers"]

NEWER_API = SandboxConfig(rate_limit=0, test_rate_limit=0, extra_fields=True)
FUTURE_CUSTOMER_STATUS = "paused_billing"
FUTURE_ONBOARDING_STATE = "on_hold"
"""What `--extra-fields` gives a `Future…` customer and onboarding created without one."""

STATUS = cell_parser(CUSTOMER.field("status"), "status")
MALFORMED = (
    "status {} is not one of onboarding, active, at_risk, churned, archived (an undocumented "
    "value is sent only in the API's own spelling: lowercase words joined by _)"
)


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        pytest.param("at_risk", "at_risk", id="documented"),
        pytest.param(" active\t", "active", id="documented, trimmed"),
        pytest.param("At Risk", "at_risk", id="tolerant spelling"),
        pytest.param("AT-RISK", "at_risk", id="tolerant spelling with a hyphen"),
        pytest.param("paused_billing", "paused_billing", id="passed through"),
        pytest.param(" paused_billing ", "paused_billing", id="passed through, trimmed"),
        pytest.param("tier2", "tier2", id="passed through, a digit"),
        pytest.param("actve", "actve", id="a typo in the API's spelling is sent too"),
        pytest.param("  ", UNSET, id="blank"),
    ],
)
def test_an_enum_cell_is_documented_tolerantly_spelled_or_passed_through(
    cell: str, value: Any
) -> None:
    assert STATUS is not None
    assert STATUS(cell) == value


@pytest.mark.parametrize(
    "cell",
    ["Actve!!", "Paused Billing", "paused-billing", "paused__billing", "_paused", "2nd", "Actve"],
)
def test_an_enum_cell_spelled_unlike_any_api_value_is_malformed(cell: str) -> None:
    assert STATUS is not None
    with pytest.raises(CellError) as caught:
        STATUS(cell)

    error = caught.value
    assert (error.column, error.code) == ("status", "invalid_enum_value")
    assert error.message == MALFORMED.format(repr(cell))


def plan_rows(planner: RowPlanner, rows: list[dict[str, str | None]]) -> list[Any]:
    return [planner.plan(SourceRecord(line, cells)) for line, cells in enumerate(rows, start=2)]


def test_the_planner_warns_once_per_column_naming_each_value_and_its_valid_rows() -> None:
    columns = ["external_id", "name", "status"]
    planner = RowPlanner("customers", columns, path=Path("in/customers.csv"))
    statuses = ["paused_billing", "active", "actve", "paused_billing", "At Risk", "paused_billing"]
    rows: list[dict[str, str | None]] = [
        {"external_id": f"K{n}", "name": f"N{n}", "status": status}
        for n, status in enumerate(statuses)
    ]
    rows.append({"external_id": None, "name": "No key", "status": "on_ice"})  # invalid: unsent

    planned = plan_rows(planner, rows)

    assert [row.payload["status"] for row in planned if isinstance(row, PlannedRow)] == [
        "paused_billing",
        "active",
        "actve",
        "paused_billing",
        "at_risk",
        "paused_billing",
    ]
    assert planner.undocumented_warnings == (
        "customers.csv: status 'paused_billing' (3 rows) and 'actve' (1 row) are not documented "
        "values; they are sent as they are and the API decides (a newer API may know them).",
    )


def test_a_warning_names_the_five_most_common_values_and_counts_the_rest() -> None:
    planner = RowPlanner("onboardings", ["customer_external_id", "state", "phase"])
    states = ["s1", "s2", "s2", "s3", "s4", "s5", "s6", "s7"]
    rows: list[dict[str, str | None]] = [
        {"customer_external_id": "K", "state": state, "phase": "launch"} for state in states
    ]

    plan_rows(planner, rows)

    assert planner.undocumented_warnings == (
        "onboardings: state 's2' (2 rows), 's1' (1 row), 's3' (1 row), 's4' (1 row), 's5' "
        "(1 row) and 2 more are not documented values; they are sent as they are and the API "
        "decides (a newer API may know them).",
    )


def test_the_warning_names_the_mapped_column_and_cuts_a_long_value() -> None:
    mapping = load_mapping(("status=Lifecycle Stage",))
    columns = ["external_id", "name", "Lifecycle Stage"]
    planner = RowPlanner("customers", columns, mapping, path=Path("crm.csv"))
    long_value = "x" * 80
    rows: list[dict[str, str | None]] = [
        {"external_id": "K1", "name": "A", "Lifecycle Stage": long_value}
    ]

    plan_rows(planner, rows)

    assert planner.undocumented_warnings == (
        f"crm.csv: Lifecycle Stage '{'x' * 59}…' (1 row) is not a documented value; it is sent "
        "as it is and the API decides (a newer API may know it).",
    )


WARNING = (
    "Warning: customers.csv: status 'paused_billing' (2 rows) is not a documented value; it is "
    "sent as it is and the API decides (a newer API may know it)."
)


def test_the_documented_api_refuses_a_passed_through_value_for_that_row_alone(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = tmp_path / "customers.csv"
    source.write_text(
        "external_id,name,status\nK1,Acme,active\nK2,Bee,paused_billing\nK3,Cee,At Risk\n"
        "K4,Dee,paused_billing\n",
        encoding="utf-8",
    )
    where = ("--base-url", threaded_sandbox.base_url, "--api-key", KEY)

    dry = bulk("import", "--customers", str(source), *where, "--dry-run", "--quiet")
    real = bulk("import", "--customers", str(source), *where, "--quiet")

    assert dry.exit_code == 0, dry.output
    assert [line for line in dry.stderr.splitlines() if line.startswith("Warning")] == [WARNING]
    assert "customers       4       0       0          0        0        0" in dry.stdout
    assert real.exit_code == 1, real.output
    assert [line for line in real.stderr.splitlines() if line.startswith("Warning")] == [WARNING]
    stored = {row["name"]: row["status"] for row in threaded_sandbox.objects(WORKSPACE, "customer")}
    assert stored == {"Acme": "active", "Cee": "at_risk"}
    errors = pl.read_csv("bulk-import.errors.csv", infer_schema=False).to_dicts()
    api_message = "status must be one of: onboarding, active, at_risk, churned, archived."
    assert [
        (row["external_id"], row["_line"], row["_error_code"], row["_error_message"])
        for row in errors
    ] == [
        ("K2", "3", "invalid_enum_value", api_message),
        ("K4", "5", "invalid_enum_value", api_message),
    ]
    results = pl.read_csv("bulk-import.results.csv", infer_schema=False)
    assert results["action"].to_list() == ["created", "failed", "created", "failed"]


def test_strict_sends_passed_through_values_they_are_not_invalid(
    threaded_extra_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = tmp_path / "customers.csv"
    source.write_text(
        "external_id,name,status\nK1,Acme,active\nK2,Bee,paused_billing\n", encoding="utf-8"
    )
    where = ("--base-url", threaded_extra_sandbox.base_url, "--api-key", KEY)

    result = bulk("import", "--customers", str(source), *where, "--strict", "--quiet")

    assert result.exit_code == 0, result.output
    stored = threaded_extra_sandbox.objects(WORKSPACE, "customer")
    assert {row["name"]: row["status"] for row in stored} == {
        "Acme": "active",
        "Bee": "paused_billing",
    }


async def test_an_unchanged_rerun_with_passed_through_values_sends_no_writes(
    extra_sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "source"
    folder.mkdir()
    (folder / "customers.csv").write_text(
        "external_id,name,status\nK1,Acme,paused_billing\nK2,Bee,active\n", encoding="utf-8"
    )
    (folder / "onboardings.csv").write_text(
        "customer_external_id,name,state\nK1,Launch,on_hold\nK2,Launch,Paused\n", encoding="utf-8"
    )
    settings = import_settings(extra_sandbox, tmp_path, folder)
    first = await run_import(settings)
    assert first.exit_code == 0, first.error
    writes = extra_sandbox.stats.writes

    again = await run_import(settings)

    assert again.exit_code == 0, again.error
    assert extra_sandbox.stats.writes == writes
    assert again.summary.passes["customers"].unchanged == 2
    assert again.summary.passes["onboardings"].unchanged == 2
    states = {row["state"] for row in extra_sandbox.objects(WORKSPACE, "onboarding")}
    assert states == {"on_hold", "paused"}


async def test_migrate_between_two_newer_apis_carries_their_own_values(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with (
        running_sandbox(NEWER_API) as source,
        running_sandbox(NEWER_API) as target,
    ):
        future = await create(http, source, "/customers", {"name": "Future Foods"})
        plain = await create(http, source, "/customers", {"name": "Plain", "status": "churned"})
        for customer, name in ((future, "Future rollout"), (plain, "Rollout")):
            body = {"customer_id": customer["id"], "name": name}
            await create(http, source, "/onboardings", body)
        settings = MigrateSettings(
            source=ConnectionSettings(api_key=KEY, base_url=source.base_url),
            target=ConnectionSettings(api_key="pivotal_globex", base_url=target.base_url),
            workdir=tmp_path / "work",
            quiet=True,
        )

        outcome = await run_migrate(settings)

        assert outcome.exit_code == 0, outcome.error
        customers = {row["name"]: row for row in target.objects("globex", "customer")}
        assert {name: row["status"] for name, row in customers.items()} == {
            "Future Foods": FUTURE_CUSTOMER_STATUS,
            "Plain": "churned",
        }
        name_of = {row["id"]: name for name, row in customers.items()}
        onboardings = target.objects("globex", "onboarding")
        states = {(name_of[row["customer_id"]], row["name"], row["state"]) for row in onboardings}
        assert states == {
            ("Future Foods", "Future rollout", FUTURE_ONBOARDING_STATE),
            ("Plain", "Rollout", "active"),
        }


def test_the_onboarding_enums_pass_through_alike() -> None:
    for name in ("phase", "state"):
        parse = cell_parser(ONBOARDING.field(name), name)
        assert parse is not None
        assert parse("on_hold") == "on_hold"
