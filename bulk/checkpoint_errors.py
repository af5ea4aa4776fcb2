"""SQLite's errors on a checkpoint, told as one line with a remedy that never risks the file.

Every statement on a checkpoint goes through `Database`, so a full disk while planning, a
damaged page met while sending or a `-wal` that cannot be created becomes a `CheckpointError`
wherever it strikes, without a `try` at each call site. The remedies are chosen so that following
them cannot lose data: a busy checkpoint names its holder (never "move this file away": on a
live checkpoint that is how rows get sent twice), a damaged one is restored from a backup or
replaced by a new one (whose run adopts the records the old one created), a full disk is freed
and the same command run again (SQLite rolled the interrupted transaction back).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn

from bulk.errors import RESUME_HINT, CheckpointBusyError, CheckpointError
from bulk.lock import Holder, current_holder

DAMAGED_REMEDY = (
    "Restore it from a backup, or start a new checkpoint (--checkpoint NEW): "
    "existing records will be adopted."
)
FULL_REMEDY = f"Free some disk space there. {RESUME_HINT}"
UNWRITABLE_REMEDY = (
    "Make the file, its folder and the -wal and -shm files beside it writable by this user "
    "(nothing else may stand where they go), then run the same command again."
)

SQLITE_HEADER = b"SQLite format 3\x00"

_BUSY = {"SQLITE_BUSY", "SQLITE_LOCKED"}
_DAMAGED = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
_FULL = {"SQLITE_FULL"}
_UNWRITABLE = {"SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"}
_IO = {"SQLITE_IOERR"}


def _primary(error: sqlite3.Error) -> str:
    """SQLite's primary result code (`SQLITE_IOERR` for `SQLITE_IOERR_WRITE`)."""
    name = getattr(error, "sqlite_errorname", None) or ""
    for primary in (*_BUSY, *_DAMAGED, *_FULL, *_UNWRITABLE, *_IO):
        if name == primary or name.startswith(primary + "_"):
            return primary
    return name


def has_sqlite_header(file: Path) -> bool:
    """Whether the file starts as every SQLite database does (raises `OSError`)."""
    with file.open("rb") as opened:
        return opened.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def not_a_checkpoint(path: Path | str) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a bulk checkpoint (not an SQLite database).",
        "Pass the path of a bulk checkpoint, or of a file that does not exist yet.",
    )


def _is_foreign(path: Path | str) -> bool:
    """A file that is not SQLite at all (not a damaged checkpoint)."""
    try:
        return not has_sqlite_header(Path(path))
    except OSError:
        return False


def checkpoint_error(path: Path | str, error: sqlite3.Error) -> CheckpointError | None:
    """The one line for `error` on the checkpoint at `path`; None for an error that is a bug
    of ours (a misuse of SQLite), which must keep its traceback."""
    kind = _primary(error)
    if kind in _BUSY:
        holder = current_holder(Path(path)) or Holder(None, None, None, None)
        return CheckpointBusyError(Path(path), holder)
    if kind in _DAMAGED and _is_foreign(path):
        return not_a_checkpoint(path)
    if kind in _DAMAGED:
        return CheckpointError(f"The checkpoint {path} is damaged ({error}).", DAMAGED_REMEDY)
    if kind in _FULL:
        return CheckpointError(
            f"Cannot write the checkpoint {path}: the disk is full.", FULL_REMEDY
        )
    if kind in _IO:
        return CheckpointError(
            f"Cannot write the checkpoint {path}: disk I/O error (a full disk, or a failing one).",
            f"Check the disk has free space and works. {RESUME_HINT}",
        )
    if kind in _UNWRITABLE:
        return CheckpointError(f"Cannot write the checkpoint {path} ({error}).", UNWRITABLE_REMEDY)
    return None


def raise_told(path: Path | str, error: sqlite3.Error) -> NoReturn:
    """Raise `error` as its `checkpoint_error` (a bug of ours as it is)."""
    told = checkpoint_error(path, error)
    if told is None:
        raise error
    raise told from error


@contextmanager
def told_as_checkpoint_error(path: Path | str) -> Iterator[None]:
    """Re-raise SQLite's errors inside as `checkpoint_error`s (bugs pass unchanged)."""
    try:
        yield
    except sqlite3.Error as error:
        raise_told(path, error)


class Rows:
    """A cursor whose rows, fetched lazily, still reach the caller as `CheckpointError`s."""

    def __init__(self, cursor: sqlite3.Cursor, path: Path | str) -> None:
        self._cursor = cursor
        self._path = path

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        try:
            return self._cursor.fetchone()
        except sqlite3.Error as error:
            raise_told(self._path, error)

    def fetchall(self) -> list[Any]:
        try:
            return self._cursor.fetchall()
        except sqlite3.Error as error:
            raise_told(self._path, error)

    def __iter__(self) -> Iterator[Any]:
        with told_as_checkpoint_error(self._path):
            yield from self._cursor


class Database:
    """The checkpoint's connection: what `sqlite3.Connection` offers the checkpoint, each
    statement's errors told by `checkpoint_error`."""

    def __init__(self, connection: sqlite3.Connection, path: Path | str) -> None:
        self.connection = connection
        """The raw connection, for migrations (their errors are told where they run)."""
        self.path = path

    @property
    def in_transaction(self) -> bool:
        return self.connection.in_transaction

    def execute(self, sql: str, parameters: Any = ()) -> Rows:
        try:  # not a `with`: this runs for every statement of a run
            return Rows(self.connection.execute(sql, parameters), self.path)
        except sqlite3.Error as error:
            raise_told(self.path, error)

    def executemany(self, sql: str, parameters: Iterable[Any]) -> Rows:
        try:
            return Rows(self.connection.executemany(sql, parameters), self.path)
        except sqlite3.Error as error:
            raise_told(self.path, error)

    def rollback(self) -> None:
        """End the open transaction, if SQLite has not already (it does on a full disk)."""
        if self.connection.in_transaction:
            with suppress(sqlite3.Error):  # the error that led here is the one to tell
                self.connection.execute("ROLLBACK")

    def close(self) -> None:
        self.connection.close()
