"""The checkpoint's migrations: named functions applied in order, all in one transaction, never
twice; a checkpoint written by an older list of them (an older bulk) is upgraded on open, its
rows and a half-done export's progress carried over."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulk.checkpoint import MIGRATIONS, Checkpoint, Migration, RowState, migrate, planned_row
from bulk.exporting.state import ExportState, ObjectProgress
from bulk.exporting.walker import WalkState
from bulk.schema import CONTACT, CUSTOMER, ONBOARDING, canonical_json

NAMES = [
    "001_rows",
    "002_export_state",
    "003_export_document",
    "004_no_state_index",
    "005_row_origin",
    "006_undo",
    "007_invalid_rows_across_runs",
    "008_no_pivotal_id_index",
]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "checkpoint.sqlite", isolation_level=None)
    yield connection
    connection.close()


def applied(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT name FROM migrations ORDER BY rowid")]


def tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_the_migrations_keep_the_names_older_checkpoints_recorded() -> None:
    assert [step.name for step in MIGRATIONS] == NAMES


def test_a_new_checkpoint_gets_every_migration_in_order_and_reopening_applies_none(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new.sqlite"
    Checkpoint(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    first = db.execute("SELECT name, applied_at FROM migrations ORDER BY rowid").fetchall()

    Checkpoint(path).close()
    assert migrate(db) == []

    assert [name for name, _ in first] == NAMES
    assert db.execute("SELECT name, applied_at FROM migrations ORDER BY rowid").fetchall() == first
    assert {"rows", "invalid_rows", "runs", "export"} <= tables(db)
    assert "export_state" not in tables(db)
    db.close()


def test_an_older_import_checkpoint_is_upgraded_in_order_and_keeps_its_rows(
    db: sqlite3.Connection, tmp_path: Path
) -> None:
    assert migrate(db, MIGRATIONS[:2]) == NAMES[:2]
    db.execute("INSERT INTO runs (started_at) VALUES ('2026-01-01T00:00:00.000Z')")

    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite")
    run = checkpoint.begin_run()
    document = checkpoint.export_document()
    checkpoint.close()

    assert applied(db) == NAMES
    assert (run.id, run.resumed) == (1, True)
    assert document is None
    assert migrate(db) == []


def test_a_half_done_export_of_an_older_bulk_resumes_from_its_named_values(
    db: sqlite3.Connection, tmp_path: Path
) -> None:
    migrate(db, MIGRATIONS[:2])
    cursor = "2026-01-01T00:00:00.001Z"
    walked = {"cursor": cursor, "seen_at_cursor": ["a", "b"], "finished": True}
    older = {
        "format": "csv",
        "workspace": "acme",
        "organization_id": "org_1",
        "customer.walk": walked,
        "customer.parts": 3,
        "customer.rows": 250,
        "customer.late_done": True,
        "onboarding.walk": {"cursor": None, "seen_at_cursor": [], "finished": True},
        "onboarding.parts": 1,
        "onboarding.rows": 40,
        "contact.parts": 2,
        "contact.rows": 90,
        "contact.customers_done": 128,
        "warnings": ["100 or more customers share created_at ..."],
    }
    db.executemany(
        "INSERT INTO export_state VALUES (?, ?)",
        [(name, json.dumps(value)) for name, value in older.items()],
    )

    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite")
    state = ExportState.load(checkpoint)
    checkpoint.close()

    assert state == ExportState(
        file_format="csv",
        workspace="acme",
        organization_id="org_1",
        objects={
            CUSTOMER.object: ObjectProgress(250, 3, WalkState(cursor, ["a", "b"], True)),
            CONTACT.object: ObjectProgress(90, 2, WalkState()),
            ONBOARDING.object: ObjectProgress(40, 1, WalkState(None, [], True)),
        },
        late_customers_done=True,
        contacts_walked=128,
        contacts_finished=False,
        warnings=["100 or more customers share created_at ..."],
        finished=False,
        parts_layout=1,  # an older bulk's parts: the export starts them again
    )
    assert "export_state" not in tables(db)


def test_a_finished_export_of_an_older_bulk_stays_finished(
    db: sqlite3.Connection, tmp_path: Path
) -> None:
    migrate(db, MIGRATIONS[:2])
    db.execute("INSERT INTO export_state VALUES ('phase', '\"done\"')")

    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite")
    state = ExportState.load(checkpoint)
    checkpoint.close()

    assert state is not None and state.finished


def test_an_older_checkpoint_knows_the_origin_of_rows_whose_action_still_tells_it(
    db: sqlite3.Connection, tmp_path: Path
) -> None:
    migrate(db, MIGRATIONS[:4])
    for key, action in (("001", "created"), ("002", "adopted"), ("003", "unchanged")):
        db.execute(
            "INSERT INTO rows (pass, key, line, source, run, state, action, payload, "
            "payload_hash, cells, updated_at) VALUES ('customers', ?, 1, 'customers.csv', 1, "
            "'done', ?, '{}', '', '{}', '2026-01-01T00:00:00.000Z')",
            (key, action),
        )

    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite")
    origins = {key: checkpoint.parent(key).origin for key in ("001", "002", "003")}
    checkpoint.close()

    # an unknown origin counts as not created here: its onboardings are looked up
    assert origins == {"001": "created", "002": "adopted", "003": None}


def test_a_failing_migration_leaves_nothing_of_the_ones_applied_with_it(
    db: sqlite3.Connection,
) -> None:
    def add_notes(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE notes (text TEXT)")
        connection.execute("INSERT INTO notes VALUES ('half')")

    def rewrite_then_fail(connection: sqlite3.Connection) -> None:
        connection.execute("UPDATE runs SET fingerprint = 'rewritten'")
        connection.execute("CREATE TABLE broken (x)")
        raise sqlite3.OperationalError("this migration is broken")

    migrate(db, MIGRATIONS)
    db.execute("INSERT INTO runs (started_at, fingerprint) VALUES ('t', 'kept')")
    before = tables(db)
    notes, bad = Migration("004_notes", add_notes), Migration("005_bad", rewrite_then_fail)
    later = [*MIGRATIONS, notes, bad]

    with pytest.raises(sqlite3.OperationalError, match="this migration is broken"):
        migrate(db, later)

    assert applied(db) == NAMES
    assert tables(db) == before
    assert db.execute("SELECT fingerprint FROM runs").fetchall() == [("kept",)]
    assert not db.in_transaction
    # fixed, the same list applies in order, once
    later[-1] = Migration("005_bad", lambda connection: None)
    assert migrate(db, later) == ["004_notes", "005_bad"]
    assert migrate(db, later) == []
    assert applied(db) == [*NAMES, "004_notes", "005_bad"]
    assert db.execute("SELECT text FROM notes").fetchall() == [("half",)]


def test_a_failing_first_migration_leaves_an_empty_file(db: sqlite3.Connection) -> None:
    def fail(connection: sqlite3.Connection) -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        migrate(db, [MIGRATIONS[0], Migration("002_fails", fail)])

    assert tables(db) == set()


def test_the_export_state_is_saved_and_loaded_whole(tmp_path: Path) -> None:
    state = ExportState(file_format="parquet", workspace="acme", warnings=["w"])
    state.of(CUSTOMER).rows, state.of(CUSTOMER).parts = 120, 2
    state.of(ONBOARDING).walk = WalkState("2026-01-01T00:00:00.000Z", ["x"], False)
    state.contacts_walked = 64

    checkpoint = Checkpoint(tmp_path / "export.sqlite")
    assert ExportState.load(checkpoint) is None
    state.save(checkpoint)
    state.save(checkpoint)
    checkpoint.close()
    checkpoint = Checkpoint(tmp_path / "export.sqlite")
    loaded = ExportState.load(checkpoint)
    checkpoint.close()

    assert loaded == state
    assert loaded is not state


async def test_group_commits_make_every_write_durable_before_the_awaiting_worker_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "group.sqlite"
    checkpoint = Checkpoint(path)
    run = checkpoint.begin_run()
    reader = sqlite3.connect(path)
    with checkpoint.grouped_commits() as group:
        checkpoint.mark_planned(run, "fingerprint")
        assert reader.execute("SELECT planned FROM runs").fetchone() == (0,)  # not yet
        await asyncio.gather(group.durable(), group.durable())  # one commit serves both
        assert reader.execute("SELECT planned FROM runs").fetchone() == (1,)
        checkpoint.finish_run(run)
    assert reader.execute("SELECT finished_at IS NOT NULL FROM runs").fetchone() == (1,)
    reader.close()
    checkpoint.close()


def test_an_older_checkpoint_loses_the_pivotal_id_index_every_sent_row_wrote_to(
    db: sqlite3.Connection, tmp_path: Path
) -> None:
    migrate(db, MIGRATIONS[:7])
    assert "rows_by_pivotal_id" in indexes(db)

    Checkpoint(tmp_path / "checkpoint.sqlite").close()

    assert applied(db) == NAMES
    assert "rows_by_pivotal_id" not in indexes(db)


def test_the_row_holding_a_pivotal_id_is_found_as_rows_are_done(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite")
    first, second, third = planned_contacts(checkpoint, "a", "b", "c")
    done(checkpoint, first, "con_1")

    assert checkpoint.key_of_pivotal_id(CONTACT.collection, "con_1") == "a"  # read from the file
    done(checkpoint, second, "con_2")
    assert checkpoint.key_of_pivotal_id(CONTACT.collection, "con_2") == "b"  # kept since
    assert checkpoint.key_of_pivotal_id(CONTACT.collection, "con_3") is None
    assert checkpoint.key_of_pivotal_id(ONBOARDING.collection, "con_1") is None
    assert checkpoint.row_state(CONTACT.collection, third.key) == "pending"
    checkpoint.close()


def test_a_holder_rolled_back_or_undone_since_is_not_believed(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite")
    first, second, third = planned_contacts(checkpoint, "a", "b", "c")
    done(checkpoint, first, "con_1")
    assert checkpoint.key_of_pivotal_id(CONTACT.collection, "con_1") == "a"

    with checkpoint.rolled_back():
        done(checkpoint, second, "con_2")
        done(checkpoint, third, "con_1")  # a second holder of the same record, rolled back
    checkpoint.database.execute(  # what an undo that deleted the record writes
        "UPDATE rows SET pivotal_id = NULL WHERE pass = ? AND key = ?", (CONTACT.collection, "a")
    )
    done(checkpoint, third, "con_3")  # the map's con_1 still names "c": a stale entry
    checkpoint.database.execute(  # a holder the map never saw: only the table can tell
        "UPDATE rows SET pivotal_id = 'con_1' WHERE pass = ? AND key = ?",
        (CONTACT.collection, "b"),
    )

    assert checkpoint.key_of_pivotal_id(CONTACT.collection, "con_2") is None
    assert checkpoint.key_of_pivotal_id(CONTACT.collection, "con_1") == "b"
    assert checkpoint.key_of_pivotal_id(CONTACT.collection, "con_3") == "c"
    checkpoint.close()


def indexes(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def planned_contacts(checkpoint: Checkpoint, *keys: str) -> list[RowState]:
    """Contacts of customer K1 planned in a run, as the sending phase reads them."""
    run = checkpoint.begin_run()
    rows = []
    for line, key in enumerate(keys, start=2):
        payload = canonical_json({"name": key, "email": f"{key}@example.com"})
        cells = json.dumps({"email": f"{key}@example.com"})
        rows.append(
            planned_row(
                run,
                CONTACT.collection,
                key,
                line,
                "contacts.csv",
                payload,
                cells,
                customer_key="K1",
            )
        )
    with checkpoint.transaction():
        checkpoint.upsert_planned(rows)
    return list(checkpoint.rows_to_send(CONTACT.collection, run))


def done(checkpoint: Checkpoint, row: RowState, pivotal_id: str) -> None:
    checkpoint.mark_done(row, "created", pivotal_id, None, 1, row.payload, row.payload_hash)
