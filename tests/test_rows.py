"""Turning records into payloads: tolerant parsing, precise problems, stable keys."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from bulk.errors import InputError
from bulk.importing.mapping import load_mapping
from bulk.importing.rows import PlannedRow, RowPlanner, RowProblem, payload_hash
from bulk.importing.sources import SourceFile, SourceRecord, discover_sources, open_source

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CUSTOMER_COLUMNS = ("external_id", "name")
CONTACT_COLUMNS = ("customer_external_id", "name", "email")
ONBOARDING_COLUMNS = ("customer_external_id",)
BASE: dict[str, dict[str, str]] = {
    "customers": {"external_id": "00042", "name": "Acme"},
    "contacts": {"customer_external_id": "00042", "name": "Bob", "email": "bob@acme.com"},
    "onboardings": {"customer_external_id": "00042"},
}


def plan(pass_name: str, **cells: str | None) -> PlannedRow | RowProblem:
    """Plan one row (line 2): the pass's required cells, overridden and extended by `cells`."""
    merged: dict[str, str | None] = {**BASE[pass_name], **cells}
    return RowPlanner(pass_name, list(merged)).plan(SourceRecord(2, merged))


def planned(pass_name: str, **cells: str | None) -> PlannedRow:
    row = plan(pass_name, **cells)
    assert isinstance(row, PlannedRow), row
    return row


def problem(pass_name: str, **cells: str | None) -> RowProblem:
    row = plan(pass_name, **cells)
    assert isinstance(row, RowProblem), row
    return row


def planner_error(pass_name: str, columns: tuple[str, ...], **options: Any) -> str:
    with pytest.raises(InputError) as caught:
        RowPlanner(pass_name, columns, **options)
    return str(caught.value)


# -- columns ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pass_name", "columns", "message"),
    [
        (
            "customers",
            ("external_id", "domain"),
            "The customers source has no 'name' column, and customers need one. "
            "Add the column, or read name from another column with --map name=COLUMN.",
        ),
        (
            "customers",
            ("name", "External ID"),
            "The customers source has no 'external_id' column, and customers need one. "
            "Read it from column 'External ID' with --map external_id=External ID.",
        ),
        (
            "contacts",
            ("customer_id", "name", "E-mail"),
            "The contacts source has no 'email' column, and contacts need one. "
            "Add the column, or read email from another column with --map email=COLUMN.",
        ),
        (
            "contacts",
            ("name", "email"),
            "The contacts source has neither a 'customer_external_id' nor a 'customer_id' "
            "column, and contacts need one of them. Add the column, or read "
            "customer_external_id from another column with --map customer_external_id=COLUMN.",
        ),
        (
            "onboardings",
            ("name", "phase"),
            "The onboardings source has neither a 'customer_external_id' nor a 'customer_id' "
            "column, and onboardings need one of them. Add the column, or read "
            "customer_external_id from another column with --map customer_external_id=COLUMN.",
        ),
    ],
)
def test_required_columns(pass_name: str, columns: tuple[str, ...], message: str) -> None:
    assert planner_error(pass_name, columns) == message


def test_required_column_message_names_the_file() -> None:
    assert planner_error("customers", ("external_id", "Name"), path=Path("x/c.csv")) == (
        "c.csv: has no 'name' column, and customers need one. "
        "Read it from column 'Name' with --map name=Name."
    )


def test_map_reads_a_field_from_another_column() -> None:
    planner = RowPlanner(
        "customers", ["external_id", "Company", "name"], load_mapping(["name=Company"])
    )
    row = planner.plan(SourceRecord(2, {"external_id": "1", "Company": "Acme", "name": "x"}))
    assert isinstance(row, PlannedRow)
    assert row.payload["name"] == "Acme"
    assert planner.field_columns["name"] == "Company"
    assert planner.unknown_columns == ()


def test_a_map_for_every_pass_never_falls_back_to_the_field_column() -> None:
    # --map without a pass applies to every pass with the field: contacts.csv lacks Company
    assert planner_error("contacts", CONTACT_COLUMNS, mapping=load_mapping(["name=Company"])) == (
        "The source has no column 'Company' (--map name=Company). Its columns are "
        "'customer_external_id', 'name', 'email'. A map without a pass applies to every pass "
        "that has name; write PASS.name=… to map it for one pass."
    )
    planner = RowPlanner("contacts", CONTACT_COLUMNS, load_mapping(["customers.name=Company"]))
    assert planner.field_columns["name"] == "name"


def test_map_of_keys_and_metadata() -> None:
    planner = RowPlanner(
        "customers",
        ["ID", "Company", "Region"],
        load_mapping(["external_id=ID", "name=Company", "metadata.region=Region"]),
    )
    row = planner.plan(SourceRecord(2, {"ID": "7", "Company": "Acme", "Region": "emea"}))
    assert isinstance(row, PlannedRow)
    assert row.key == "7"
    assert row.payload["metadata"] == {"region": "emea", "external_id": "7"}


def test_unknown_columns_are_listed_once_and_read_only_columns_are_ignored() -> None:
    columns = (
        "external_id", "name", "Foo", "id", "display_id", "created_at", "updated_at",
        "livemode", "started_at", "completed_at", "metadata", "metadata.region",
        "customer_id", "customer_external_id", "email", "Bar",
    )  # fmt: skip
    planner = RowPlanner("customers", columns, path=Path("customers.csv"))
    assert planner.unknown_columns == ("Foo", "email", "Bar")
    assert planner.warning == "customers.csv: ignoring unknown columns 'Foo', 'email', 'Bar'."

    contacts = RowPlanner("contacts", (*CONTACT_COLUMNS, "metadata.x", "domain", "labels"))
    assert contacts.unknown_columns == ("metadata.x", "domain")
    assert RowPlanner("onboardings", ("customer_id", "Notes")).warning == (
        "onboardings: ignoring unknown column 'Notes'."
    )
    assert RowPlanner("customers", CUSTOMER_COLUMNS).warning is None


def test_read_only_columns_never_reach_the_payload() -> None:
    row = planned(
        "onboardings",
        id="cl9", display_id="3", created_at="2026-01-01T00:00:00.000Z", livemode="false",
        started_at="2026-01-02T00:00:00.000Z", completed_at="x", phase="launch",
    )  # fmt: skip
    assert row.payload == {"phase": "launch"}


# -- parsers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pass_name", "column", "cell", "value"),
    [
        ("customers", "name", "  Acme, Inc.  ", "  Acme, Inc.  "),  # strings as given
        ("customers", "plan", "Enterprise\nnet 30", "Enterprise\nnet 30"),
        ("customers", "domain", "Acme.COM", "Acme.COM"),
        ("customers", "hubspot_company_id", "00123", "00123"),
        ("customers", "mrr", "0", 0),
        ("customers", "mrr", " 2500 ", 2500),
        ("customers", "mrr", "007", 7),
        ("onboardings", "reminder_frequency_days", "1", 1),
        ("contacts", "is_primary", "true", True),
        ("contacts", "is_primary", "TRUE", True),
        ("contacts", "is_primary", "Yes", True),
        ("contacts", "is_primary", "1", True),
        ("contacts", "is_primary", "false", False),
        ("contacts", "is_primary", " No ", False),
        ("contacts", "is_primary", "0", False),
        ("onboardings", "waiting_on_customer", "yes", True),
        ("onboardings", "reminders_enabled", "False", False),
        ("customers", "status", "at_risk", "at_risk"),
        ("customers", "status", "Active", "active"),
        ("customers", "status", "At Risk", "at_risk"),
        ("customers", "status", "at-risk", "at_risk"),
        ("onboardings", "phase", "Program Design", "program_design"),
        ("onboardings", "state", "WAITING", "waiting"),
        ("contacts", "email", "Bob.Smith+x@Acme.COM", "Bob.Smith+x@Acme.COM"),
        ("contacts", "email", " bob@acme.com ", "bob@acme.com"),
        ("customers", "slug", "acme", "acme"),
        ("customers", "slug", "acme-2", "acme-2"),
        ("onboardings", "target_launch_date", "2026-03-15", "2026-03-15T00:00:00.000Z"),
        ("onboardings", "target_launch_date", "2026-03-15T09:30:00Z", "2026-03-15T09:30:00.000Z"),
        (
            "onboardings",
            "target_launch_date",
            "2026-03-15T09:30:00+02:00",
            "2026-03-15T07:30:00.000Z",
        ),
        ("onboardings", "target_launch_date", "2026-03-15T09:30:00", "2026-03-15T09:30:00.000Z"),
        ("onboardings", "target_launch_date", "2026-03-15 09:30", "2026-03-15T09:30:00.000Z"),
        (
            "onboardings",
            "target_launch_date",
            "2026-03-15T09:30:00.123999Z",
            "2026-03-15T09:30:00.123Z",
        ),
        ("customers", "tags", "vip;emea", ["vip", "emea"]),
        ("customers", "tags", " a ; b;;c ; ", ["a", "b", "c"]),
        ("customers", "tags", "solo", ["solo"]),
        ("customers", "tags", ";", []),
        ("customers", "tags", '["partners, tier 1", "beta"]', ["partners, tier 1", "beta"]),
        ("customers", "tags", "[]", []),
        ("contacts", "labels", 'billing;"it"', ["billing", '"it"']),
        ("contacts", "labels", '["it, security"]', ["it, security"]),
    ],
)
def test_cells_become_typed_values(pass_name: str, column: str, cell: str, value: Any) -> None:
    assert planned(pass_name, **{column: cell}).payload[column] == value


@pytest.mark.parametrize(
    ("pass_name", "column", "cell"),
    [
        ("customers", "mrr", "   "),
        ("contacts", "is_primary", " "),
        ("customers", "status", "  "),
        ("onboardings", "target_launch_date", "\t"),
        ("customers", "metadata", "  "),
    ],
)
def test_blank_typed_cells_are_not_set(pass_name: str, column: str, cell: str) -> None:
    payload = planned(pass_name, **{column: cell}).payload
    if column == "metadata":
        assert payload[column] == {"external_id": "00042"}  # only the tool's own key
    else:
        assert column not in payload


@pytest.mark.parametrize(
    ("pass_name", "column", "cell", "code", "message"),
    [
        ("customers", "mrr", "12.5", "invalid_type", "mrr '12.5' is not a whole number"),
        ("customers", "mrr", "ten", "invalid_type", "mrr 'ten' is not a whole number"),
        ("customers", "mrr", "1,000", "invalid_type", "mrr '1,000' is not a whole number"),
        ("customers", "mrr", "-1", "too_small", "mrr '-1' is less than the minimum 0"),
        (
            "onboardings",
            "reminder_frequency_days",
            "0",
            "too_small",
            "reminder_frequency_days '0' is less than the minimum 1",
        ),
        (
            "contacts",
            "is_primary",
            "maybe",
            "invalid_type",
            "is_primary 'maybe' is not a boolean (use true/false, yes/no or 1/0)",
        ),
        (
            "customers",
            "status",
            "Actve!!",
            "invalid_enum_value",
            "status 'Actve!!' is not one of onboarding, active, at_risk, churned, archived (an "
            "undocumented value is sent only in the API's own spelling: lowercase words joined "
            "by _)",
        ),
        (
            "onboardings",
            "state",
            "Done Now",
            "invalid_enum_value",
            "state 'Done Now' is not one of active, paused, at_risk, waiting (an undocumented "
            "value is sent only in the API's own spelling: lowercase words joined by _)",
        ),
        ("contacts", "email", "bob@", "invalid_string", "email 'bob@' is not an email address"),
        (
            "contacts",
            "email",
            "bob smith@acme.com",
            "invalid_string",
            "email 'bob smith@acme.com' is not an email address",
        ),
        (
            "customers",
            "slug",
            "Acme Inc",
            "invalid_string",
            "slug 'Acme Inc' is not a slug (lowercase letters and digits, in words joined by "
            "single hyphens); leave it empty to derive one from the name",
        ),
        (
            "customers",
            "slug",
            "a" * 65,
            "too_big",
            f"slug '{'a' * 59}…' is 65 characters long, more than the 64 allowed",
        ),
        (
            "customers",
            "name",
            "N" * 201,
            "too_big",
            f"name '{'N' * 59}…' is 201 characters long, more than the 200 allowed",
        ),
        (
            "onboardings",
            "target_launch_date",
            "15/03/2026",
            "invalid_string",
            "target_launch_date '15/03/2026' is not an ISO 8601 date or datetime "
            "(like 2026-03-15 or 2026-03-15T09:30:00Z)",
        ),
        (
            "onboardings",
            "target_launch_date",
            "2026-02-30",
            "invalid_string",
            "target_launch_date '2026-02-30' is not an ISO 8601 date or datetime "
            "(like 2026-03-15 or 2026-03-15T09:30:00Z)",
        ),
        (
            "customers",
            "tags",
            '["a", 1]',
            "invalid_type",
            "tags '[\"a\", 1]' is not a list of strings",
        ),
        (
            "customers",
            "tags",
            '["a"',
            "invalid_json",
            "tags '[\"a\"' is not valid JSON: Expecting ',' delimiter: line 1 column 5 (char 4)",
        ),
        (
            "customers",
            "metadata",
            "{bad",
            "invalid_json",
            "metadata '{bad' is not valid JSON: Expecting property name enclosed in double "
            "quotes: line 1 column 2 (char 1)",
        ),
        (
            "customers",
            "metadata",
            "[1]",
            "invalid_type",
            "metadata '[1]' is a JSON array, not an object",
        ),
        (
            "customers",
            "metadata",
            '"text"',
            "invalid_type",
            "metadata '\"text\"' is a JSON string, not an object",
        ),
    ],
)
def test_bad_cells_are_problems(
    pass_name: str, column: str, cell: str, code: str, message: str
) -> None:
    found = problem(pass_name, **{column: cell})
    assert (found.column, found.code, found.message) == (column, code, message)


@pytest.mark.parametrize(
    "email",
    ["a" * 250 + "@x.io", "al@localhost", "o'brien+tag@example.co.uk"],
    ids=["255 characters", "no dot in the domain", "quote and plus"],
)
def test_only_a_plainly_malformed_email_is_refused_the_api_judges_the_rest(email: str) -> None:
    """pivotal-api.md documents neither a pattern nor a length for emails."""
    assert planned("contacts", email=email).payload["email"] == email.lower()


@pytest.mark.parametrize(
    ("pass_name", "cells", "column", "message"),
    [
        ("customers", {"external_id": None}, "external_id", "external_id is required but empty"),
        ("customers", {"name": None}, "name", "name is required but empty"),
        ("contacts", {"email": None}, "email", "email is required but empty"),
        ("contacts", {"email": "   "}, "email", "email is required but empty"),
        ("contacts", {"name": None}, "name", "name is required but empty"),
        (
            "contacts",
            {"customer_external_id": None},
            "customer_external_id",
            "customer_external_id is required but empty",
        ),
        (
            "onboardings",
            {"customer_external_id": None, "customer_id": None},
            "customer_external_id",
            "customer_external_id and customer_id are both empty; set one of them",
        ),
    ],
)
def test_missing_cells(
    pass_name: str, cells: dict[str, str | None], column: str, message: str
) -> None:
    found = problem(pass_name, **cells)
    assert (found.code, found.column, found.message) == ("missing_field", column, message)


@pytest.mark.parametrize("pass_name", ["contacts", "onboardings"])
def test_a_child_with_both_customer_columns_takes_its_customer_external_id(
    pass_name: str,
) -> None:
    """SPEC "Input columns": an export's `customer_id` names the source workspace, its
    `customer_external_id` the customer's key, which the import knows."""
    row = planned(pass_name, customer_id="cl9bn00of0000g7l8gcq8c4xk")
    assert (row.customer_key, row.customer_ref) == ("00042", None)
    assert row.key == ("00042/bob@acme.com" if pass_name == "contacts" else "00042")


def test_a_child_with_an_empty_customer_external_id_takes_its_customer_id() -> None:
    row = planned("contacts", customer_external_id=None, customer_id="cl9bn00of0000g7l8gcq8c4xk")
    assert (row.customer_key, row.customer_ref) == (None, "cl9bn00of0000g7l8gcq8c4xk")


def test_every_problem_of_a_row_is_found_and_the_record_carried() -> None:
    cells: dict[str, str | None] = {
        "customer_external_id": None, "name": "Bob", "email": "bob@", "is_primary": "maybe",
    }  # fmt: skip
    found = RowPlanner("contacts", list(cells)).plan(SourceRecord(17, cells))
    assert isinstance(found, RowProblem)
    assert (found.pass_name, found.line, found.column, found.cells) == (
        "contacts", 17, "customer_external_id", cells,
    )  # fmt: skip
    assert [(issue.column, issue.code) for issue in found.issues] == [
        ("customer_external_id", "missing_field"),
        ("email", "invalid_string"),
        ("is_primary", "invalid_type"),
    ]


def test_problems_name_the_mapped_column() -> None:
    planner = RowPlanner(
        "contacts",
        ["customer_id", "Full name", "Mail"],
        load_mapping(["email=Mail", "name=Full name"]),
    )
    found = planner.plan(SourceRecord(3, {"customer_id": "4", "Full name": None, "Mail": "x@"}))
    assert isinstance(found, RowProblem)
    assert (found.column, found.message) == ("Full name", "Full name is required but empty")
    found = planner.plan(SourceRecord(3, {"customer_id": "4", "Full name": "Bo", "Mail": "x@"}))
    assert isinstance(found, RowProblem)
    assert (found.column, found.message) == ("Mail", "Mail 'x@' is not an email address")


# -- slugs, metadata, keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [  # written from pivotal-api.md: accented letters are not folded, they become `-`
        ("Café Crème SARL", "caf-cr-me-sarl"),
        ("Café Müller", "caf-m-ller"),
        ("Ødegaard Fiskeri AS", "degaard-fiskeri-as"),
        ("Acme, Inc.", "acme-inc"),
        ('  --The "Best" Widgets!!', "the-best-widgets"),
        ("Sakura 桜 Design KK", "sakura-design-kk"),
        ("x" * 70, "x" * 64),
        ("a" * 63 + " b", "a" * 63),
    ],
)
def test_no_slug_is_sent_when_the_source_has_none_only_predicted(name: str, slug: str) -> None:
    for cells in ({}, {"slug": None}):
        row = planned("customers", name=name, **cells)
        assert "slug" not in row.payload
        assert row.slug == slug


def test_a_given_slug_is_kept() -> None:
    row = planned("customers", name="東京デザイン株式会社", slug="tokyo-design")
    assert (row.payload["slug"], row.slug) == ("tokyo-design", "tokyo-design")


def test_a_name_that_predicts_no_slug_is_left_to_the_api() -> None:
    row = planned("customers", name="東京デザイン株式会社")
    assert "slug" not in row.payload
    assert row.slug is None


def test_metadata_merge_order() -> None:
    row = planned(
        "customers",
        external_id="00042",
        metadata='{"region": "emea", "tier": 2, "external_id": "spoofed"}',
        **{"metadata.region": "apac", "metadata.segment": "smb", "metadata.tier": None},
    )
    assert row.payload["metadata"] == {
        "region": "apac",  # the column wins over the JSON object
        "tier": 2,
        "segment": "smb",
        "external_id": "00042",  # and the tool's own key wins over both
    }


def test_customers_always_carry_their_external_id_in_metadata() -> None:
    row = planned("customers", external_id="000123")
    assert row.payload == {  # no slug: the API derives it
        "name": "Acme",
        "metadata": {"external_id": "000123"},
    }
    assert (row.key, row.customer_key, row.customer_ref) == ("000123", None, None)


@pytest.mark.parametrize(
    ("pass_name", "cells", "key", "customer_key", "customer_ref"),
    [
        ("contacts", {"email": "Bob@Acme.COM"}, "00042/bob@acme.com", "00042", None),
        (
            "contacts",
            {"customer_external_id": None, "customer_id": "17", "email": "Bob@Acme.COM"},
            "17/bob@acme.com",
            None,
            "17",
        ),
        ("contacts", {"external_id": "c-1"}, "c-1", "00042", None),
        ("onboardings", {}, "00042", "00042", None),
        ("onboardings", {"customer_external_id": None, "customer_id": "cl9"}, "cl9", None, "cl9"),
        ("onboardings", {"external_id": "ob-2"}, "ob-2", "00042", None),
    ],
)
def test_child_keys(
    pass_name: str,
    cells: dict[str, str | None],
    key: str,
    customer_key: str | None,
    customer_ref: str | None,
) -> None:
    row = planned(pass_name, **cells)
    assert (row.key, row.customer_key, row.customer_ref) == (key, customer_key, customer_ref)
    assert "customer_id" not in row.payload
    assert "external_id" not in row.payload
    assert "customer_external_id" not in row.payload


def test_a_planned_row_keeps_its_record() -> None:
    cells: dict[str, str | None] = {"external_id": "1", "name": "Acme", "Foo": "bar"}
    row = RowPlanner("customers", list(cells)).plan(SourceRecord(9, cells))
    assert isinstance(row, PlannedRow)
    assert (row.pass_name, row.line, row.cells) == ("customers", 9, cells)
    assert "Foo" not in row.payload


def test_payload_hash_is_canonical() -> None:
    payload = {"name": "Café", "tags": ["b", "a"], "metadata": {"z": 1, "a": None}}
    canonical = '{"metadata":{"a":null,"z":1},"name":"Café","tags":["b","a"]}'
    assert payload_hash(payload) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert payload_hash(dict(reversed(payload.items()))) == payload_hash(payload)
    assert payload_hash({**payload, "tags": ["a", "b"]}) != payload_hash(payload)


# -- real inputs -----------------------------------------------------------------------------


def _plan_all(source: SourceFile) -> list[PlannedRow | RowProblem]:
    with open_source(source) as opened:
        planner = RowPlanner(source.pass_name, opened.columns, path=source.path)
        assert planner.unknown_columns == ()
        return [planner.plan(record) for batch in opened.batches() for record in batch]


@pytest.mark.parametrize("folder", [SAMPLES, SAMPLES / "parquet"])
def test_every_sample_row_plans_without_a_problem(folder: Path) -> None:
    counts = {}
    for source in discover_sources([folder], {}):
        results = _plan_all(source)
        problems = [result for result in results if isinstance(result, RowProblem)]
        assert problems == []
        keys = [result.key for result in results if isinstance(result, PlannedRow)]
        assert len(set(keys)) == len(keys)
        counts[source.pass_name] = len(results)
    assert counts == {"customers": 50, "contacts": 100, "onboardings": 40}


def test_csv_and_parquet_samples_plan_the_same_payloads() -> None:
    for csv_source, parquet_source in zip(
        discover_sources([SAMPLES], {}), discover_sources([SAMPLES / "parquet"], {}), strict=True
    ):
        csv_rows = _plan_all(csv_source)
        parquet_rows = _plan_all(parquet_source)
        assert [
            (r.key, payload_hash(r.payload)) for r in csv_rows if isinstance(r, PlannedRow)
        ] == [(r.key, payload_hash(r.payload)) for r in parquet_rows if isinstance(r, PlannedRow)]


def test_an_export_shaped_parquet_folder_is_valid_input(tmp_path: Path) -> None:
    created = datetime(2026, 5, 26, 17, 21, 9, 412_000, tzinfo=UTC)
    pl.DataFrame(
        {
            "id": ["cl9a"], "display_id": pl.Series([1], dtype=pl.Int64),
            "external_id": ["cl9a"], "name": ["Acme"], "slug": ["acme"],
            "status": ["active"], "mrr": pl.Series([1200], dtype=pl.Int64),
            "tags": pl.Series([["vip", "emea"]]), "metadata": [json.dumps({"external_id": "7"})],
            "livemode": [False], "created_at": [created], "updated_at": [created],
        }
    ).write_parquet(tmp_path / "customers.parquet")  # fmt: skip
    pl.DataFrame(
        {
            "id": ["cl9o"], "customer_external_id": ["cl9a"], "name": ["Rollout"],
            "phase": ["launch"], "target_launch_date": [created], "waiting_on_customer": [True],
            "reminders_enabled": [False], "reminder_frequency_days": pl.Series([3], dtype=pl.Int32),
            "started_at": pl.Series([None], dtype=pl.Datetime("ms", "UTC")),
            "completed_at": pl.Series([None], dtype=pl.Datetime("ms", "UTC")),
        }
    ).write_parquet(tmp_path / "onboardings.parquet")  # fmt: skip

    customers, onboardings = (_plan_all(s) for s in discover_sources([tmp_path], {}))

    assert customers == [
        PlannedRow(
            "customers", 2, "cl9a", None, None,
            {
                "name": "Acme", "slug": "acme", "status": "active", "mrr": 1200,
                "tags": ["vip", "emea"], "metadata": {"external_id": "cl9a"},
            },
            customers[0].cells,
            "acme",
        )
    ]  # fmt: skip
    [onboarding] = onboardings
    assert isinstance(onboarding, PlannedRow)
    assert onboarding.key == "cl9a"
    assert onboarding.payload == {
        "name": "Rollout",
        "phase": "launch",
        "target_launch_date": "2026-05-26T17:21:09.412Z",
        "waiting_on_customer": True,
        "reminders_enabled": False,
        "reminder_frequency_days": 3,
    }
