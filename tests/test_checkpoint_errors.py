"""SQLite's errors on a checkpoint are one `CheckpointError` wherever they strike, with a remedy
that never risks the file; a read-only open changes no byte and creates no file."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from bulk.checkpoint import MIGRATIONS, Checkpoint, migrate, planned_row
from bulk.checkpoint_errors import DAMAGED_REMEDY, checkpoint_error
from bulk.errors import CheckpointBusyError, CheckpointError
from bulk.lock import CheckpointLock


def operational(name: str, message: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorname = name  # type: ignore[attr-defined]
    return error


def snapshot(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def a_checkpoint(path: Path) -> Path:
    checkpoint = Checkpoint(path)
    run = checkpoint.begin_run()
    checkpoint.record_invalid(run, [])
    checkpoint.close()
    return path


@pytest.mark.parametrize(
    ("name", "message", "says"),
    [
        ("SQLITE_FULL", "database or disk is full", "the disk is full. Free some disk space"),
        ("SQLITE_IOERR_WRITE", "disk I/O error", "disk I/O error"),
        ("SQLITE_CANTOPEN", "unable to open database file", "Cannot write the checkpoint"),
        ("SQLITE_READONLY", "attempt to write a readonly database", "Cannot write"),
        ("SQLITE_CORRUPT", "database disk image is malformed", "is damaged"),
    ],
)
def test_each_kind_of_sqlite_error_is_one_line_with_a_safe_remedy(
    name: str, message: str, says: str, tmp_path: Path
) -> None:
    path = a_checkpoint(tmp_path / "ck.sqlite")

    told = checkpoint_error(path, operational(name, message))

    assert isinstance(told, CheckpointError) and told.exit_code == 2
    assert says in str(told)
    assert "move" not in str(told).lower() and "\n" not in str(told)


def test_a_busy_checkpoint_names_the_run_that_holds_it(tmp_path: Path) -> None:
    path = a_checkpoint(tmp_path / "ck.sqlite")
    with CheckpointLock(path, "bulk import"):
        told = checkpoint_error(path, operational("SQLITE_BUSY", "database is locked"))
    assert isinstance(told, CheckpointBusyError)
    assert f"pid {os.getpid()}" in str(told)


def test_a_misuse_of_sqlite_is_not_dressed_up_as_the_users_problem(tmp_path: Path) -> None:
    assert checkpoint_error(tmp_path / "ck.sqlite", sqlite3.ProgrammingError("bug")) is None


def test_a_damaged_page_met_while_reading_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "ck.sqlite"
    checkpoint = Checkpoint(path)
    run = checkpoint.begin_run()
    cells = '{"name": "' + "n" * 500 + '"}'
    checkpoint.upsert_planned(
        planned_row(run, "customers", f"K{n}", n, "customers.csv", "{}", cells) for n in range(2000)
    )
    checkpoint.close()
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.seek(size // 4)
        file.write(b"\xa5" * (size // 2))

    with pytest.raises(CheckpointError, match="is damaged") as damaged:
        checkpoint = Checkpoint(path)
        try:
            list(checkpoint.rows_to_send("customers", run))
        finally:
            checkpoint.close()
    assert DAMAGED_REMEDY in str(damaged.value)


def test_a_file_that_is_not_sqlite_is_not_called_damaged(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("external_id,name\nK1,Kay\n" * 100)

    with pytest.raises(CheckpointError, match="is not a bulk checkpoint"):
        Checkpoint(path)
    assert path.read_text().startswith("external_id,name")


def test_a_checkpoint_in_a_folder_that_does_not_exist_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nightly" / "ck.sqlite"
    Checkpoint(path).close()
    assert path.exists()


def test_a_transaction_cut_short_by_the_disk_keeps_the_disks_error(tmp_path: Path) -> None:
    """SQLite rolls back itself on a full disk: the ROLLBACK that follows must not mask it."""
    checkpoint = Checkpoint(tmp_path / "ck.sqlite")
    with pytest.raises(RuntimeError, match="the real cause"), checkpoint.transaction():
        checkpoint.begin_run()
        checkpoint._db.connection.execute("ROLLBACK")  # what SQLite does on SQLITE_FULL
        raise RuntimeError("the real cause")
    checkpoint.close()


# -- read-only ----------------------------------------------------------------------------------


def test_a_read_only_open_of_a_closed_checkpoint_changes_and_creates_nothing(
    tmp_path: Path,
) -> None:
    path = a_checkpoint(tmp_path / "ck.sqlite")
    before = (snapshot(tmp_path), path.stat().st_mtime_ns)

    checkpoint = Checkpoint(path, read_only=True)
    assert checkpoint.latest_run() is not None
    checkpoint.close()

    assert (snapshot(tmp_path), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.sqlite"]


def test_a_read_only_open_sees_what_a_live_run_has_committed(tmp_path: Path) -> None:
    path = tmp_path / "ck.sqlite"
    live = Checkpoint(path)
    run = live.begin_run()
    live.finish_run(run)
    try:
        reader = Checkpoint(path, read_only=True)
        assert reader.latest_run() == type(run)(run.id, False, None, False)
        with pytest.raises(CheckpointError):
            reader.begin_run()  # a reader cannot write
        reader.close()
    finally:
        live.close()


def test_a_read_only_open_of_an_older_checkpoint_reads_it_migrated_and_leaves_it_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, MIGRATIONS[:1])
    db.execute("INSERT INTO runs (started_at) VALUES ('2025-01-01T00:00:00.000Z')")
    db.close()
    before = snapshot(tmp_path)

    checkpoint = Checkpoint(path, read_only=True)
    assert checkpoint.export_document() is None  # the table of a later migration is readable
    assert checkpoint.latest_run() is not None
    checkpoint.close()

    assert snapshot(tmp_path) == before


def test_another_programs_database_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE migrations (name TEXT)")  # even one with this table name
    db.close()

    with pytest.raises(CheckpointError, match="is not a bulk checkpoint"):
        Checkpoint(path, read_only=True)
