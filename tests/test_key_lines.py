"""The planner's memory of a whole source: keys and their first lines, batch after batch."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest

from bulk.checkpoint import Checkpoint
from bulk.importing import planning
from bulk.importing.key_lines import KeyLines
from bulk.importing.planning import PlanOptions, open_sources, plan_import
from bulk.importing.sources import SourceFile


def same_hash(keys: pl.Series) -> pl.Series:
    """Every key collides with every other."""
    return pl.repeat(0, keys.len(), dtype=pl.UInt64, eager=True)


def fill(lines: KeyLines, batches: list[list[tuple[str, int]]]) -> None:
    for batch in batches:
        lines.start_batch(key for key, _ in batch)
        for key, line in batch:
            lines.setdefault(key, line)


BATCHES = [
    [("00123", 2), ("b", 3), ("00123", 4)],
    [("c", 5), ("b", 6), ("é€", 7)],
    [("a long key of more than twelve bytes", 8)],
    [("d", 9), ("e", 10), ("c", 11)],
    [("f", 12)],
]
FIRST_LINES = {
    "00123": 2,
    "b": 3,
    "c": 5,
    "é€": 7,
    "a long key of more than twelve bytes": 8,
    "d": 9,
    "e": 10,
    "f": 12,
}


@pytest.mark.parametrize("hasher", [None, same_hash], ids=["polars hash", "all collide"])
def test_the_first_line_of_each_key_stays_across_batches(hasher: object) -> None:
    lines = KeyLines() if hasher is None else KeyLines(same_hash)

    fill(lines, BATCHES)
    lines.start_batch([*FIRST_LINES, "123", "g", "00123 "])

    assert {key: lines[key] for key in FIRST_LINES} == FIRST_LINES
    assert len(lines) == len(FIRST_LINES)
    assert [key in lines for key in ("123", "g", "00123 ")] == [False, False, False]
    assert lines.get("g") is None
    with pytest.raises(KeyError):
        lines["g"]


@pytest.mark.parametrize("hasher", [None, same_hash], ids=["polars hash", "all collide"])
def test_a_key_nobody_announced_is_still_found(hasher: object) -> None:
    lines = KeyLines() if hasher is None else KeyLines(same_hash)
    fill(lines, BATCHES)

    lines.start_batch([])

    assert {key: lines.get(key) for key in [*FIRST_LINES, "zz"]} == {**FIRST_LINES, "zz": None}
    assert lines.setdefault("c", 99) == 5
    assert lines.setdefault("zz", 13) == 13
    lines.start_batch(["zz"])
    assert lines["zz"] == 13


def test_a_colliding_absent_key_never_takes_a_line() -> None:
    """Two keys sharing a hash are two keys: a collision cannot make a new row a duplicate."""
    lines = KeyLines(same_hash)
    fill(lines, [[("a", 2)], [("b", 3)]])

    lines.start_batch(["c"])

    assert "c" not in lines
    assert lines.setdefault("c", 4) == 4


def test_duplicates_slugs_and_customers_are_found_across_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "BATCH_ROWS", 2)
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "external_id,name\nC1,Acme\nC2,Beta\nC3,\nC1,Gamma\nC4,acme\nC3,Delta\n", encoding="utf-8"
    )
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "customer_external_id,name,email\nC2,Bob,bob@b.io\nC3,Carl,carl@c.io\nC9,Dan,dan@d.io\n"
        "C1,Eve,eve@e.io\n",
        encoding="utf-8",
    )
    options = PlanOptions()
    sources = open_sources(
        [SourceFile("customers", customers, "csv"), SourceFile("contacts", contacts, "csv")],
        options,
    )
    checkpoint = Checkpoint(tmp_path / "plan.sqlite")
    plan_import(checkpoint, checkpoint.begin_run(), sources, options)
    checkpoint.close()

    with sqlite3.connect(tmp_path / "plan.sqlite") as db:
        invalid = db.execute(
            "SELECT pass, line, code, message FROM invalid_rows ORDER BY pass DESC, line"
        ).fetchall()
        planned = db.execute(
            "SELECT pass, line, state FROM rows ORDER BY pass DESC, line"
        ).fetchall()
    assert invalid == [
        ("customers", 4, "missing_field", "name is required but empty"),
        ("customers", 5, "duplicate_key", "external_id 'C1' already appears on line 2"),
        (
            "customers",
            6,
            "duplicate_slug",
            "name 'acme' gives the slug 'acme' that line 2 gets too (the API derives slugs "
            "from names); add a slug column to give each customer its own",
        ),
        ("customers", 7, "duplicate_key", "external_id 'C3' already appears on line 4"),
        (
            "contacts",
            4,
            "unknown_customer",
            "customer_external_id 'C9' is neither in the customers source nor known to the "
            "checkpoint",
        ),
    ]
    assert planned == [
        ("customers", 2, "pending"),
        ("customers", 3, "pending"),
        ("contacts", 2, "pending"),
        ("contacts", 3, "skipped"),
        ("contacts", 5, "pending"),
    ]
