"""Mapping source columns to fields (SPEC "Mapping columns to fields"): `--map` per pass or for
every pass, templates over columns, `--map-file` with `values` tables, and one clear line for
every map that cannot be right."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from click.testing import CliRunner, Result
from helpers import KEY, WORKSPACE

from bulk.cli import main
from bulk.sandbox import Sandbox


def bulk(*arguments: str) -> Result:
    return CliRunner().invoke(main, list(arguments), catch_exceptions=False)


def against(sandbox: Sandbox) -> tuple[str, ...]:
    return ("--base-url", sandbox.base_url, "--api-key", KEY, "--quiet")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def by_external_id(sandbox: Sandbox) -> dict[str, dict[str, object]]:
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
