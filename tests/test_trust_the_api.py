"""The client relies on what the API documents, not on our sandbox's guesses (issue 9).

Each test failed when the client derived slugs itself and sent them.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import polars as pl
import pytest
from helpers import WORKSPACE, ManualClock, at_ms, counts, create, import_settings

from bulk.errors import InputError
from bulk.importing.importer import run_import
from bulk.sandbox import Sandbox


def customers_file(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "customers.csv").write_text(text, encoding="utf-8")
    return folder


async def test_a_customer_without_a_slug_gets_the_slug_the_api_derives(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    source = customers_file(tmp_path / "source", "external_id,name\n001,Café Müller\n")

    outcome = await run_import(import_settings(sandbox, tmp_path, source))

    assert outcome.exit_code == 0, outcome.error
    [customer] = sandbox.objects(WORKSPACE, "customer")
    assert (customer["name"], customer["slug"]) == ("Café Müller", "caf-m-ller")
    assert customer["metadata"] == {"external_id": "001"}


async def test_our_customer_is_adopted_by_its_external_id_whatever_slug_the_api_gave_it(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # Made by an earlier import whose checkpoint was lost; the API derived its slug.
    ours = await create(
        http, sandbox, "/customers", {"name": "Café Müller", "metadata": {"external_id": "001"}}
    )
    source = customers_file(tmp_path / "source", "external_id,name,plan\n001,Café Müller,gold\n")

    outcome = await run_import(import_settings(sandbox, tmp_path, source))

    assert outcome.exit_code == 0, outcome.error
    assert counts(outcome, "adopted") == {"customers": 1}
    [customer] = sandbox.objects(WORKSPACE, "customer")  # no second Café Müller
    assert (customer["id"], customer["slug"], customer["plan"]) == (
        ours["id"],
        "caf-m-ller",
        "gold",
    )


async def test_two_rows_whose_names_give_one_slug_flag_the_later_before_anything_is_sent(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    source = customers_file(
        tmp_path / "source", "external_id,name\n001,Acme Inc.\n002,Globex\n003,ACME inc\n"
    )

    outcome = await run_import(import_settings(sandbox, tmp_path, source, dry_run=True))

    assert outcome.exit_code == 1
    assert outcome.plan is not None
    assert outcome.plan.passes["customers"]["invalid"] == 1
    assert outcome.plan.passes["customers"]["create"] == 2
    assert not (tmp_path / "import.errors.csv").exists()  # a dry run writes no errors file
    assert outcome.plan.invalid_preview == [
        f"Invalid rows (a real run writes them to {tmp_path / 'import.errors.csv'}):",
        "  customers.csv line 4: name 'ACME inc' gives the slug 'acme-inc' that line 2 gets too "
        "(the API derives slugs from names); add a slug column to give each customer its own",
    ]
    assert sandbox.objects(WORKSPACE, "customer") == []


async def test_given_slugs_that_collide_flag_the_later_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    source = customers_file(
        tmp_path / "source", "external_id,name,slug\n001,Acme,acme\n002,Acme Two,acme\n"
    )

    outcome = await run_import(import_settings(sandbox, tmp_path, source))

    assert outcome.exit_code == 1
    assert counts(outcome, "created") == {"customers": 1}
    assert counts(outcome, "invalid") == {"customers": 1}
    errors = pl.read_csv(tmp_path / "import.errors.csv", infer_schema=False).to_dicts()
    assert [(row["_line"], row["_error_code"], row["_error_message"]) for row in errors] == [
        ("3", "duplicate_slug", "slug 'acme' is also the slug of line 2; give each its own")
    ]
    [customer] = sandbox.objects(WORKSPACE, "customer")
    assert customer["metadata"] == {"external_id": "001"}


async def test_a_duplicate_key_after_an_invalid_first_row_is_caught_through_map(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    source = customers_file(
        tmp_path / "source", "Ref,Company,status\n007,Bond,bogus!\n007,Bond Two,active\n"
    )
    settings = import_settings(sandbox, tmp_path, source, maps=("external_id=Ref", "name=Company"))

    outcome = await run_import(settings)

    assert outcome.exit_code == 1
    assert counts(outcome, "invalid") == {"customers": 2}
    errors = pl.read_csv(tmp_path / "import.errors.csv", infer_schema=False).to_dicts()
    assert [(row["_line"], row["_error_code"]) for row in errors] == [
        ("2", "invalid_enum_value"),
        ("3", "duplicate_key"),
    ]
    assert errors[1]["_error_message"] == "external_id '007' already appears on line 2"
    assert sandbox.objects(WORKSPACE, "customer") == []


async def test_an_edited_row_after_a_lost_checkpoint_is_adopted_and_patched_not_stuck(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    source = customers_file(tmp_path / "source", "external_id,name,plan\n001,Acme,gold\n")
    await run_import(import_settings(sandbox, tmp_path / "first", source))
    (source / "customers.csv").write_text(
        "external_id,name,plan\n001,Acme,silver\n", encoding="utf-8"
    )

    # A new checkpoint: the same idempotency key now comes with another body.
    outcome = await run_import(import_settings(sandbox, tmp_path / "second", source))

    assert outcome.exit_code == 0, outcome.error
    assert counts(outcome, "adopted") == {"customers": 1}
    [customer] = sandbox.objects(WORKSPACE, "customer")
    assert (customer["name"], customer["plan"]) == ("Acme", "silver")
    assert customer["metadata"] == {"external_id": "001"}


async def test_a_list_typed_parquet_name_is_refused_naming_file_column_and_type(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    pl.DataFrame(
        {"external_id": ["001"], "name": [["List", "Name"]], "tags": [["vip", "emea"]]}
    ).write_parquet(source / "customers.parquet")

    with pytest.raises(InputError) as refused:
        await run_import(import_settings(sandbox, tmp_path, source))

    assert str(refused.value) == (
        "customers.parquet, column 'name': has type List(String), a list; only tags and labels "
        "can hold lists. Make the column text, or map it to tags or labels with --map."
    )
    assert sandbox.objects(WORKSPACE, "customer") == []
    assert sandbox.stats.requests == 0


async def test_the_adoption_walk_finds_a_holder_the_plain_cursor_skips(
    timed: Sandbox, clock: ManualClock, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # Ours first, then 120 others in the same millisecond: the plain cursor's second page
    # starts strictly older than that millisecond and never shows ours.
    at_ms(clock, 1_780_000_000_000)
    ours = await create(
        http,
        timed,
        "/customers",
        {"name": "Acme", "status": "active", "metadata": {"external_id": "001"}},
    )
    for n in range(120):
        await create(http, timed, "/customers", {"name": f"Other {n}"})
    clock.advance(1)
    source = customers_file(tmp_path / "source", "external_id,name,plan\n001,Acme,gold\n")

    outcome = await run_import(import_settings(timed, tmp_path, source))

    assert outcome.exit_code == 0, outcome.error
    assert counts(outcome, "adopted") == {"customers": 1}
    acme = [c for c in timed.objects(WORKSPACE, "customer") if c["name"] == "Acme"]
    assert [(c["id"], c["plan"]) for c in acme] == [(ours["id"], "gold")]
