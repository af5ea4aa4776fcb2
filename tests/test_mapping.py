"""Mapping source columns to fields (SPEC "Mapping columns to fields"): `--map` per pass or for
every pass, templates over columns, `--map-file` with `values` tables, and one clear line for
every map that cannot be right."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from helpers import KEY, SAMPLES, WORKSPACE, bulk, source_rows
from test_readme import section

from bulk.importing.mapping import Template, load_mapping
from bulk.sandbox import Sandbox, SandboxConfig, sandbox_in_thread


def against(sandbox: Sandbox) -> tuple[str, ...]:
    return ("--base-url", sandbox.base_url, "--api-key", KEY, "--quiet")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


WRITES = ("POST", "PATCH")


def by_external_id(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["external_id"]: c for c in sandbox.objects(WORKSPACE, "customer")}


# -- the defects of the one global rename (issue 10, section 3) ------------------------------


def test_a_repeated_map_for_one_field_is_an_error_not_a_silent_override(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write(tmp_path / "customers.csv", "external_id,Company,Legal name\n1,Acme,Acme SA\n")

    result = bulk(
        "import", "--customers", str(source), *against(threaded_sandbox),
        "--map", "name=Company", "--map", "name=Legal name",
    )  # fmt: skip

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --map name=Company and --map name=Legal name both map the customers' name. "
        "Keep one of them.\n"
    )
    assert threaded_sandbox.stats.requests == 0


def test_a_typo_in_the_mapped_column_is_an_error_not_a_silent_fall_back(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write(tmp_path / "customers.csv", "external_id,name,Company\n1,acme,Acme SA\n")

    result = bulk(
        "import", "--customers", str(source), *against(threaded_sandbox), "--map", "name=Compnay"
    )  # fmt: skip

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: customers.csv: has no column 'Compnay' (--map name=Compnay). "
        "Did you mean 'Company'?\n"
    )
    assert threaded_sandbox.stats.requests == 0


def test_a_map_for_one_pass_leaves_the_others_alone(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    write(tmp_path / "src" / "customers.csv", "external_id,name\n1,Acme\n")
    write(tmp_path / "src" / "contacts.csv", "customer_external_id,Full Name,email\n1,Ana,a@x.io\n")

    result = bulk(
        "import", str(tmp_path / "src"), *against(threaded_sandbox),
        "--map", "contacts.name=Full Name",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    [customer] = threaded_sandbox.objects(WORKSPACE, "customer")
    [contact] = threaded_sandbox.objects(WORKSPACE, "contact")
    assert customer["name"] == "Acme"
    assert (contact["name"], contact["email"], contact["customer_id"]) == (
        "Ana",
        "a@x.io",
        customer["id"],
    )


def test_a_template_builds_a_field_from_two_columns(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    write(tmp_path / "src" / "customers.csv", "external_id,name\n1,Acme\n")
    write(
        tmp_path / "src" / "contacts.csv",
        "customer_external_id,First Name,Last Name,email\n1,Ana,Lima,a@x.io\n1,,Cole,c@x.io\n",
    )

    result = bulk(
        "import", str(tmp_path / "src"), *against(threaded_sandbox),
        "--map", "contacts.name={First Name} {Last Name}",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    contacts = {c["email"]: c["name"] for c in threaded_sandbox.objects(WORKSPACE, "contact")}
    assert contacts == {"a@x.io": "Ana Lima", "c@x.io": "Cole"}


def test_a_map_file_translates_values(threaded_sandbox: Sandbox, tmp_path: Path) -> None:
    source = write(
        tmp_path / "customers.csv",
        "Record ID,Company name,Lifecycle Stage\n7,Acme,Customer\n8,Globex, lead \n9,Initech,\n",
    )
    map_file = write(
        tmp_path / "map.toml",
        '[customers]\nexternal_id = "Record ID"\nname = "Company name"\n'
        'status = { column = "Lifecycle Stage", values = { Customer = "active", '
        'Lead = "onboarding" } }\n',
    )

    result = bulk(
        "import", "--customers", str(source), *against(threaded_sandbox),
        "--map-file", str(map_file),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    customers = by_external_id(threaded_sandbox)
    assert {key: (c["name"], c["status"]) for key, c in customers.items()} == {
        "7": ("Acme", "active"),
        "8": ("Globex", "onboarding"),
        "9": ("Initech", "onboarding"),  # not set: the API's default
    }
    lines = pl.read_csv("bulk-import.results.csv", infer_schema=False)
    assert lines["action"].to_list() == ["created"] * 3


# -- templates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "cells", "text"),
    [
        ("{First Name} {Last Name}", {"First Name": "Ana", "Last Name": "Lima"}, "Ana Lima"),
        ("{First Name} {Last Name}", {"First Name": None, "Last Name": "Lima"}, "Lima"),
        ("{First Name} {Last Name}", {"First Name": "Ana", "Last Name": None}, "Ana"),
        ("{First Name} {Last Name}", {"First Name": " Ana ", "Last Name": "  "}, "Ana"),
        ("{First Name} {Last Name}", {"First Name": None, "Last Name": "  "}, None),
        ("{ First Name }  {Last Name}", {"First Name": "Ana", "Last Name": "Lima"}, "Ana  Lima"),
        ("{A} {B} {C}", {"A": "a", "B": None, "C": "c"}, "a c"),
        ("{A} {B} {C}", {"A": None, "B": None, "C": "c"}, "c"),
        ("{A}\n\n{B}", {"A": "a", "B": None}, "a"),
        ("{A}{B}", {"A": None, "B": "b"}, "b"),
        ("{City}, {Country}", {"City": None, "Country": "France"}, ", France"),
        ("{A} - {B}", {"A": "a", "B": None}, "a -"),
        ("{{{Code}}} {Name}", {"Code": "42", "Name": "Acme"}, "{42} Acme"),
        ("Acme {{EU}} {Region}", {"Region": None}, None),
    ],
)
def test_a_template_renders_cells_and_collapses_the_space_of_empty_parts(
    template: str, cells: dict[str, str | None], text: str | None
) -> None:
    assert Template.parse(template).render(cells) == text


# -- maps refused before anything is read ----------------------------------------------------


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        (
            ["nmae=Company"],
            "--map nmae=Company: no pass has a field 'nmae'. Did you mean 'name'?",
        ),
        (
            ["customers.customer_external_id=Company ID"],
            "--map customers.customer_external_id=Company ID: customers have no field "
            "'customer_external_id'. Did you mean 'external_id'?",
        ),
        (
            ["contacts.metadata.stage=Stage"],
            "--map contacts.metadata.stage=Stage: contacts have no field 'metadata.stage'. Map "
            "one of customer_external_id, customer_id, email, external_id, is_primary, labels, "
            "name, phone, title, or metadata.<key>.",
        ),
        (
            ["contact.name=Full Name"],
            "--map contact.name=Full Name: there is no pass 'contact'. Did you mean 'contacts'?",
        ),
        (
            ["name=A", "customers.name=B"],
            "--map name=A and --map customers.name=B both map the customers' name. "
            "Keep one of them.",
        ),
        (
            ["name"],
            "--map 'name' is not FIELD=COLUMN. Example: --map name=Company, "
            "--map 'contacts.name={First Name} {Last Name}'.",
        ),
        (
            ["name={First Name"],
            "--map name={First Name: the template '{First Name' has a lone '{' "
            "(write {{ for a brace).",
        ),
        (
            ["name={} x"],
            "--map name={} x: the template '{} x' has an empty {} (put a column name inside).",
        ),
        (["name={{x}}"], "--map name={{x}}: the template '{{x}}' names no {Column}."),
    ],
)
def test_a_wrong_map_option_is_one_line_and_exit_2(maps: list[str], message: str) -> None:
    options = [part for text in maps for part in ("--map", text)]

    result = bulk("import", "--customers", "customers.csv", "--sandbox", "--quiet", *options)

    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"


MAP_FILE_ERRORS = [
    pytest.param(
        '[customers]\nexternal_id = "Record ID"\nname = Company name\n',
        "map.toml line 3: is not valid TOML at column 8: invalid value. Quote column names "
        'and templates: name = "Company name".',
        id="malformed",
    ),
    pytest.param(
        '[customers]\nname = "A"\nname = "B"\n',
        "map.toml line 3: is not valid TOML at column 11: cannot overwrite a value. A key is "
        "given twice: keep one map per field.",
        id="a key twice",
    ),
    pytest.param(
        '[companies]\nname = "Company name"\n',
        "map.toml: [companies]: there is no pass 'companies'. Name the tables [customers], "
        "[contacts], [onboardings].",
        id="unknown pass",
    ),
    pytest.param(
        '[contact]\nname = "Full Name"\n',
        "map.toml: [contact]: there is no pass 'contact'. Did you mean 'contacts'?",
        id="misspelt pass",
    ),
    pytest.param(
        'name = "Company name"\n',
        "map.toml: name = 'Company name' is outside any table. Put each map under "
        "[customers], [contacts] or [onboardings].",
        id="outside any table",
    ),
    pytest.param(
        '[customers]\nnmae = "Company name"\n',
        "map.toml: [customers] nmae: customers have no field 'nmae'. Did you mean 'name'?",
        id="unknown field",
    ),
    pytest.param(
        '[customers]\nmetadata.stage = "A"\n"metadata.stage" = "B"\n',
        'map.toml: [customers] metadata.stage and [customers] "metadata.stage" both map the '
        "customers' metadata.stage. Keep one of them.",
        id="dotted and quoted key",
    ),
    pytest.param(
        "[customers]\nname = 3\n",
        "map.toml: [customers] name: is 3, not a column name, a template or a table. Write "
        'name = "Column", or name = { column = "Column", values = { … } }.',
        id="a number",
    ),
    pytest.param(
        '[customers]\nstatus = { colum = "Stage" }\n',
        "map.toml: [customers] status: has 'colum', which a map does not take. "
        "Did you mean 'column'?",
        id="misspelt column key",
    ),
    pytest.param(
        '[customers]\nstatus = { values = { Customer = "active" } }\n',
        'map.toml: [customers] status: has no column. Write status = { column = "Column", '
        "values = { … } }.",
        id="no column",
    ),
    pytest.param(
        '[customers]\nstatus = { column = "Stage", values = { Customer = "Actve" } }\n',
        "map.toml: [customers] status: values gives 'Customer' the value 'Actve', but status "
        "'Actve' is not one of onboarding, active, at_risk, churned, archived (an undocumented "
        "value is sent only in the API's own spelling: lowercase words joined by _). Give a "
        "value the API takes.",
        id="a value the field cannot take",
    ),
    pytest.param(
        '[customers]\nstatus = { column = "Stage", values = { Lead = "onboarding", " lead" = '
        '"active" } }\n',
        "map.toml: [customers] status: values has both 'Lead' and ' lead', which match the "
        "same cells (trimmed, ignoring case). Keep one of them.",
        id="two values for one text",
    ),
    pytest.param(
        '[customers]\nstatus = { column = "Stage", values = ["active"] }\n',
        "map.toml: [customers] status: values is ['active'], not a table. Write values = "
        '{ Customer = "active", Lead = "onboarding" }.',
        id="values not a table",
    ),
]


@pytest.mark.parametrize(("text", "message"), MAP_FILE_ERRORS)
def test_a_wrong_map_file_is_one_line_naming_it_and_exit_2(text: str, message: str) -> None:
    write(Path("map.toml"), text)

    result = bulk(
        "import", "--customers", "customers.csv", "--sandbox", "--quiet", "--map-file", "map.toml"
    )

    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"


def test_a_missing_map_file_is_named() -> None:
    result = bulk("import", "x", "--sandbox", "--quiet", "--map-file", "nowhere.toml")

    assert result.exit_code == 2
    assert result.stderr == "Error: nowhere.toml: does not exist.\n"


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        (
            ["--map", "contacts.name={First Name} {Lsat Name}"],
            "contacts.csv: has no column 'Lsat Name' (--map contacts.name={First Name} "
            "{Lsat Name}). Did you mean 'Last Name'?",
        ),
        (
            ["--map", "customer_external_id=Account"],
            "contacts.csv: has no column 'Account' (--map customer_external_id=Account). Its "
            "columns are 'Company ID', 'First Name', 'Last Name', 'email'. A map without a pass "
            "applies to every pass that has customer_external_id; write "
            "PASS.customer_external_id=… to map it for one pass.",
        ),
        (
            ["--map-file", "map.toml"],
            "customers.csv: has no column 'Lifecycle stage' (map.toml [customers] status). "
            "Did you mean 'Lifecycle Stage'?",
        ),
    ],
)
def test_a_map_naming_a_column_the_file_lacks_names_the_closest_one(
    maps: list[str], message: str
) -> None:
    write(Path("src/customers.csv"), "external_id,name,Lifecycle Stage\n1,Acme,Customer\n")
    write(Path("src/contacts.csv"), "Company ID,First Name,Last Name,email\n1,Ana,Lima,a@x.io\n")
    write(Path("map.toml"), '[customers]\nstatus = { column = "Lifecycle stage" }\n')

    result = bulk("import", "src", "--sandbox", "--quiet", *maps)

    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"
    assert not Path("bulk-import.sqlite").exists()


# -- the map file and --map together ---------------------------------------------------------


def test_map_options_override_the_file_and_values_cover_empty_cells(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    write(tmp_path / "src" / "customers.csv", "Ref,Company,Legal,Stage,Tier\n1,Acme,Acme SA,,\n"
          "2,Globex,Globex Corp,Lead,x\n")  # fmt: skip
    write(
        tmp_path / "map.toml",
        '[customers]\nexternal_id = "Ref"\nname = "Company"\n'
        'status = { column = "Stage", values = { "" = "at_risk", lead = "onboarding" } }\n'
        'plan = { column = "Tier", values = { x = "" } }\n'
        '[customers.metadata]\nstage = "Stage"\n',
    )

    result = bulk(
        "import", str(tmp_path / "src"), *against(threaded_sandbox),
        "--map-file", str(tmp_path / "map.toml"), "--map", "customers.name={Legal}",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stderr == "Warning: customers.csv: ignoring unknown column 'Company'.\n"
    customers = by_external_id(threaded_sandbox)
    assert [(c["name"], c["status"], c["plan"], c["metadata"]) for c in customers.values()] == [
        ("Acme SA", "at_risk", None, {"external_id": "1"}),
        ("Globex Corp", "onboarding", None, {"external_id": "2", "stage": "Lead"}),
    ]


def test_the_same_rows_through_a_map_hash_as_the_same_payloads(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    """Renaming columns and mapping them back changes no payload: nothing is sent again."""
    write(tmp_path / "a" / "customers.csv", "external_id,name,status\n1,Acme,active\n")
    write(tmp_path / "b" / "customers.csv", "Ref,Company,Stage\n1,Acme,Customer\n")
    write(
        tmp_path / "map.toml",
        '[customers]\nexternal_id = "Ref"\n'
        '[customers.status]\ncolumn = "Stage"\nvalues = { Customer = "active" }\n',
    )
    first = bulk("import", str(tmp_path / "a"), *against(threaded_sandbox))
    assert first.exit_code == 0, first.output
    before = dict(threaded_sandbox.stats.methods)

    again = bulk(
        "import", str(tmp_path / "b"), *against(threaded_sandbox),
        "--map-file", str(tmp_path / "map.toml"), "--map", "name={Company}",
    )  # fmt: skip

    assert again.exit_code == 0, again.output
    total, created, updated, unchanged = again.stdout.splitlines()[1].split()[1:5]
    assert (total, created, updated, unchanged) == ("1", "0", "0", "1")
    sent = {name: threaded_sandbox.stats.methods[name] - before.get(name, 0) for name in WRITES}
    assert sent == {"POST": 0, "PATCH": 0}


# -- the CRM sample, as the README runs it ---------------------------------------------------

CRM = SAMPLES / "crm"
STATUS_OF_STAGE = {  # hubspot.toml's values table, written out; 'Churned' matches none
    "Customer": "active",
    "customer ": "active",
    "Opportunity": "onboarding",
    "Lead": "onboarding",
    "Evangelist": "active",
    "Sales Qualified Lead": "onboarding",
    "Other": "archived",
    "Churned": "churned",
    "Marketing Qualified Lead": "onboarding",
}
NAME_WITHOUT_A_PART = {"104": "Moreau", "112": "Kenji"}


def test_the_readme_shows_the_crm_map_file_as_it_is() -> None:
    toml = re.search(r"```toml\n(.*?)```", section("Importing a CRM export"), re.DOTALL)
    assert toml is not None
    assert toml.group(1) == (CRM / "hubspot.toml").read_text(encoding="utf-8")


def test_the_readme_command_imports_the_crm_sample_field_by_field(tmp_path: Path) -> None:
    (tmp_path / "samples").symlink_to(SAMPLES)  # the command runs from a checkout's root
    [command] = re.findall(r"```sh\n(.*?)\n```", section("Importing a CRM export"), re.DOTALL)
    program, *arguments = shlex.split(command)
    assert program == "bulk"

    result = bulk(*arguments)

    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.stdout.splitlines()[1:3]] == [
        ["customers", "10", "10", "0", "0", "0", "0", "0", "0"],
        ["contacts", "20", "20", "0", "0", "0", "0", "0", "0"],
    ]
    config = SandboxConfig(db_path=tmp_path / ".bulk" / "sandbox.sqlite", rate_limit=0)
    with sandbox_in_thread(config) as sandbox:
        assert_crm_sample_imported(sandbox, "sandbox")


def assert_crm_sample_imported(sandbox: Sandbox, workspace: str) -> None:
    customers = {c["metadata"]["external_id"]: c for c in sandbox.objects(workspace, "customer")}
    companies = source_rows("customers", CRM)
    assert sorted(customers) == sorted(str(row["Record ID"]) for row in companies)
    for row in companies:
        customer = customers[row["Record ID"]]
        assert customer["name"] == row["Company name"]
        assert customer["hubspot_company_id"] == row["Record ID"]
        domain = row["Company Domain Name"]
        assert customer["domain"] == (domain.lower() if domain is not None else None)
        assert customer["status"] == STATUS_OF_STAGE[row["Lifecycle Stage"] or ""]
        metadata = {
            "external_id": row["Record ID"],
            "lifecycle_stage": row["Lifecycle Stage"],
            "industry": row["Industry"],
            "location": f"{row['City']}, {row['Country/Region']}",
        }
        if row["Number of Employees"] is not None:
            metadata["employees"] = row["Number of Employees"]
        assert customer["metadata"] == metadata

    contacts = {c["email"]: c for c in sandbox.objects(workspace, "contact")}
    people = source_rows("contacts", CRM)
    assert len(contacts) == len(people)
    for row in people:
        assert row["Email"] is not None
        contact = contacts[row["Email"].lower()]
        name = NAME_WITHOUT_A_PART.get(row["Record ID"] or "")
        assert contact["name"] == (name or f"{row['First Name']} {row['Last Name']}")
        assert contact["customer_id"] == customers[row["Associated Company ID"] or ""]["id"]
        assert contact["title"] == row["Job Title"]
        assert contact["phone"] == row["Phone Number"]
        roles = row["Buying Role"]
        assert contact["labels"] == (roles.split(";") if roles is not None else [])


def test_a_changed_crm_export_sends_only_what_changed(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    export = tmp_path / "crm"
    shutil.copytree(CRM, export)
    command = ("import", str(export), "--map-file", str(export / "hubspot.toml"))
    first = bulk(*command, *against(threaded_sandbox))
    assert first.exit_code == 0, first.output
    assert_crm_sample_imported(threaded_sandbox, WORKSPACE)
    before = dict(threaded_sandbox.stats.methods)

    unchanged = bulk(*command, *against(threaded_sandbox))

    assert unchanged.exit_code == 0, unchanged.output
    assert {
        name: threaded_sandbox.stats.methods[name] - before.get(name, 0) for name in WRITES
    } == {
        "POST": 0,
        "PATCH": 0,
    }
    companies = (export / "customers.csv").read_text(encoding="utf-8")
    (export / "customers.csv").write_text(
        companies.replace(",Sakura Design Studio,sakura-design.jp,Sales Qualified Lead,",
                          ",Sakura Design Studio,sakura-design.jp,Customer,"),
        encoding="utf-8",
    )  # fmt: skip
    before = dict(threaded_sandbox.stats.methods)

    changed = bulk(*command, *against(threaded_sandbox))

    assert changed.exit_code == 0, changed.output
    assert {
        name: threaded_sandbox.stats.methods[name] - before.get(name, 0) for name in WRITES
    } == {
        "POST": 0,
        "PATCH": 1,
    }
    sakura = by_external_id(threaded_sandbox)["5830231964"]
    assert (sakura["status"], sakura["metadata"]["lifecycle_stage"]) == ("active", "Customer")


def test_a_mapped_onboarding_external_id_is_the_key_a_duplicate_names(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    write(tmp_path / "src" / "customers.csv", "external_id,name\n1,Acme\n")
    write(
        tmp_path / "src" / "onboardings.csv",
        "customer_external_id,Ref,name\n1,A,Pilot\n1,A,Roll-out\n",
    )

    result = bulk(
        "import", str(tmp_path / "src"), *against(threaded_sandbox),
        "--map", "onboardings.external_id=Ref",
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    errors = pl.read_csv("bulk-import.errors.csv", infer_schema=False).to_dicts()
    assert [(row["_line"], row["_error_code"], row["_error_message"]) for row in errors] == [
        ("3", "duplicate_key", "external_id 'A' already appears on line 2")
    ]
    [onboarding] = threaded_sandbox.objects(WORKSPACE, "onboarding")
    assert onboarding["name"] == "Pilot"


def test_the_plan_fingerprint_sees_what_maps_mean_not_how_they_were_written(
    tmp_path: Path,
) -> None:
    map_file = write(tmp_path / "map.toml", '[customers]\ndomain = "Site"\n')
    by_option = load_mapping(["domain=Site"]).canonical()  # only customers have a domain

    assert load_mapping(["customers.domain=Site"]).canonical() == by_option
    assert load_mapping((), map_file).canonical() == by_option
    assert load_mapping(["domain={Site}"]).canonical() != by_option
    write(map_file, '[customers]\ndomain = { column = "Site", values = { x = "y.io" } }\n')
    assert load_mapping((), map_file).canonical() != by_option
    assert load_mapping().canonical() == []  # what the fingerprint held before: plans still match
