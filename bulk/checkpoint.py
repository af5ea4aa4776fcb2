"""The checkpoint: one SQLite file (WAL) holding every source row's state, or an export's progress.

A row moves `pending` → `in_flight` → `done` | `failed` | `skipped`. It is marked `in_flight`,
with the exact request it is about to send, in a committed transaction *before* the request
leaves; so after a crash at any instant the next run knows which requests may have taken effect
and re-sends exactly those, under the same idempotency key. The schema migrates itself through
an ordered list of named migration functions (`@migration`), applied on open in one transaction.

The API key is never stored here.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from bulk.checkpoint_errors import (
    Database,
    has_sqlite_header,
    not_a_checkpoint,
    told_as_checkpoint_error,
)
from bulk.errors import CheckpointError
from bulk.schema import CUSTOMER, OBJECT_SCHEMAS, canonical_json, now_timestamp, text_digest

STATES = ("pending", "in_flight", "done", "failed", "skipped")
WAL_CHECKPOINT_PAGES = 10_000
"""Pages the WAL may hold (40 MB) before a commit copies them into the file. With SQLite's
1,000, a commit every few thousand rows sent held the event loop while it copied them: 6 µs of
wall time a row sent, 52 against 46 (`benchmarks/checkpoint_writes.py`, 20,000 rows)."""
ROWS_READ_AT_ONCE = 64
"""Rows to send read by one query. Each read holds the event loop: 1,000 rows took 2 to 5 ms,
longer than 8 requests in flight keep a fast server busy; 64 take a few tenths of a ms."""


MigrationFunction = Callable[[sqlite3.Connection], None]
"""Changes the schema (and may rewrite rows) through the connection; never commits."""


@dataclass(frozen=True)
class Migration:
    """One named step of the checkpoint's schema; the `migrations` table records its name."""

    name: str
    apply: MigrationFunction


MIGRATIONS: list[Migration] = []
"""Every migration, in the order they apply."""


def migration(name: str) -> Callable[[MigrationFunction], MigrationFunction]:
    """Register the decorated function as the next migration, under `name` (never renamed)."""

    def register(function: MigrationFunction) -> MigrationFunction:
        MIGRATIONS.append(Migration(name, function))
        return function

    return register


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Apply the migrations `db` has not had, in order, in one transaction; their names.

    A migration that fails rolls back all of them: the file stays as it was.
    """
    if not _pending(db, migrations):
        return []
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        pending = _pending(db, migrations)  # again, now that no other process can migrate
        for step in pending:
            step.apply(db)
            db.execute("INSERT INTO migrations VALUES (?, ?)", (step.name, now_timestamp()))
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return [step.name for step in pending]


def _pending(db: sqlite3.Connection, migrations: Sequence[Migration]) -> list[Migration]:
    applied = _applied(db)
    return [step for step in migrations if step.name not in applied]


def _applied(db: sqlite3.Connection) -> set[str]:
    """The names of the migrations `db` has had (none for a file that is no checkpoint)."""
    has_table = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'"
    ).fetchone()
    if not has_table:
        return set()
    return {str(row[0]) for row in db.execute("SELECT name FROM migrations")}


@migration("001_rows")
def _rows(db: sqlite3.Connection) -> None:
    """Source rows with their state and in-flight request, invalid rows, runs."""
    db.execute(
        """
        CREATE TABLE rows (
            pass TEXT NOT NULL,
            key TEXT NOT NULL,
            line INTEGER NOT NULL,
            source TEXT NOT NULL,
            run INTEGER NOT NULL,
            state TEXT NOT NULL,
            action TEXT,
            customer_key TEXT,
            customer_ref TEXT,
            payload TEXT NOT NULL,
            payload_hash TEXT NOT NULL,
            synced_payload TEXT,
            synced_hash TEXT,
            request_method TEXT,
            request_path TEXT,
            request_body TEXT,
            request_payload TEXT,
            pivotal_id TEXT,
            display_id INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            error_code TEXT,
            error_message TEXT,
            cells TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (pass, key)
        )
        """
    )
    db.execute("CREATE INDEX rows_by_state ON rows (pass, state, line)")
    db.execute("CREATE INDEX rows_by_run ON rows (run, pass, line)")
    db.execute(
        """
        CREATE TABLE invalid_rows (
            run INTEGER NOT NULL,
            pass TEXT NOT NULL,
            line INTEGER NOT NULL,
            source TEXT NOT NULL,
            key TEXT,
            column_name TEXT,
            code TEXT NOT NULL,
            message TEXT NOT NULL,
            cells TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX invalid_by_run ON invalid_rows (run, pass, line)")
    db.execute(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            fingerprint TEXT,
            planned INTEGER NOT NULL DEFAULT 0
        )
        """
    )


@migration("002_export_state")
def _export_values(db: sqlite3.Connection) -> None:
    """The export's progress as loose named JSON values (replaced by 003)."""
    db.execute("CREATE TABLE export_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)")


@migration("003_export_document")
def _export_document(db: sqlite3.Connection) -> None:
    """The export's progress as one JSON document (`bulk.exporting.state.ExportState`); the
    named values of an export begun by an older bulk are carried over, so it resumes."""
    db.execute("CREATE TABLE export (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL)")
    values = {
        name: json.loads(value)
        for name, value in db.execute("SELECT name, value FROM export_state")
    }
    if values:
        db.execute("INSERT INTO export VALUES (1, ?)", (json.dumps(_from_values(values)),))
    db.execute("DROP TABLE export_state")


def _from_values(values: dict[str, Any]) -> dict[str, Any]:
    """The 002 named values as the document 003 introduced."""
    return {
        "file_format": values.get("format"),
        "workspace": values.get("workspace"),
        "organization_id": values.get("organization_id"),
        "objects": {
            schema.object: {
                "rows": values.get(f"{schema.object}.rows", 0),
                "parts": values.get(f"{schema.object}.parts", 0),
                "walk": values.get(f"{schema.object}.walk"),
            }
            for schema in OBJECT_SCHEMAS
        },
        "late_customers_done": bool(values.get("customer.late_done")),
        "contacts_walked": values.get("contact.customers_done", 0),
        "contacts_finished": bool(values.get("contact.finished")),
        "warnings": values.get("warnings", []),
        "finished": values.get("phase") == "done",
    }


@migration("004_no_state_index")
def _no_state_index(db: sqlite3.Connection) -> None:
    """Drop the (pass, state, line) index: every row changes state twice per send, and each
    change rewrote two of its entries, while the rows to send are found through the run's
    (run, pass, line) index and only reports, once per run, scan by state."""
    db.execute("DROP INDEX IF EXISTS rows_by_state")


@migration("005_row_origin")
def _row_origin(db: sqlite3.Connection) -> None:
    """Whether this checkpoint created a row's record or adopted one that existed (`origin`),
    which `action` cannot tell once a later run says `unchanged`: an onboarding under a
    customer it did not create is looked up before it is created (`bulk.importing.matching`).
    An older checkpoint knows it where the latest action still says so. The index finds the
    row that holds a record, for every candidate such a lookup lists."""
    db.execute("ALTER TABLE rows ADD COLUMN origin TEXT")
    db.execute("UPDATE rows SET origin = action WHERE action IN ('created', 'adopted')")
    db.execute("CREATE INDEX rows_by_pivotal_id ON rows (pass, pivotal_id)")


@migration("006_undo")
def _undo(db: sqlite3.Connection) -> None:
    """What `bulk undo` needs (`bulk.undoing`): the values an adopted record held before our
    first change to it (`before`), the `updated_at` our last write of it got back
    (`written_at`), the generation that idempotency keys derive from (bumped when an undo
    deletes the record, so a re-import creates it anew), the undo's own per-row state, and the
    workspace the import wrote to."""
    for column in ("before TEXT", "written_at TEXT"):  # `origin` came with 005
        db.execute(f"ALTER TABLE rows ADD COLUMN {column}")
    db.execute("ALTER TABLE rows ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """
        CREATE TABLE undo (
            pass TEXT NOT NULL,
            key TEXT NOT NULL,
            state TEXT NOT NULL,
            action TEXT NOT NULL,
            outcome TEXT,
            method TEXT,
            path TEXT,
            body BLOB,
            attempts INTEGER NOT NULL DEFAULT 0,
            error_code TEXT,
            error_message TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (pass, key)
        )
        """
    )
    db.execute(
        "CREATE TABLE workspace (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "organization_id TEXT, slug TEXT, name TEXT, recorded_at TEXT NOT NULL)"
    )


@migration("007_invalid_rows_across_runs")
def _invalid_rows_across_runs(db: sqlite3.Connection) -> None:
    """Invalid rows become the checkpoint's, not a run's: the latest plan of a pass holds that
    pass's invalid rows, until the pass is planned again (the errors file covers every run).
    Older checkpoints kept each run's: of those, each pass keeps its latest plan's only — the
    later of its last run with an invalid row and its last run with a valid one."""
    db.execute(
        """
        DELETE FROM invalid_rows WHERE run < (
            SELECT max(latest) FROM (
                SELECT max(run) AS latest FROM rows WHERE rows.pass = invalid_rows.pass
                UNION ALL
                SELECT max(run) FROM invalid_rows AS later WHERE later.pass = invalid_rows.pass
            )
        )
        """
    )
    db.execute("CREATE INDEX invalid_by_key ON invalid_rows (pass, key)")


@migration("008_no_pivotal_id_index")
def _no_pivotal_id_index(db: sqlite3.Connection) -> None:
    """Drop the (pass, pivotal_id) index of 005. Every row sent put an entry at a random place
    in it (Pivotal ids are not in source order), for lookups that only a conflict or an
    onboarding's match makes; `Checkpoint.key_of_pivotal_id` now keeps its own map, built
    when the first lookup comes. Measured by `benchmarks/checkpoint_writes.py` at 20,000
    rows: the index cost 16 to 19 µs of CPU and 29 to 32 µs of wall time a row sent."""
    db.execute("DROP INDEX IF EXISTS rows_by_pivotal_id")


def _open_for_writing(path: Path | str) -> sqlite3.Connection:
    """Open (creating the file and its folder) and migrate."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def open_read_only(path: Path | str) -> sqlite3.Connection:
    """Open for reading only, refusing a file that is not a `bulk` checkpoint.

    Nothing is written or created: a cleanly closed WAL file (no `-wal` beside it) is opened
    `immutable`, since even a read-only open would create its `-wal` and `-shm`; a file in use
    (its `-wal` is there) is read as SQLite's readers do. A checkpoint written by an older
    `bulk` is copied into memory and migrated there, so it reads as a current one.
    """
    file = Path(path)
    try:
        if not has_sqlite_header(file):
            raise not_a_checkpoint(file)
    except OSError as error:
        raise CheckpointError(f"Cannot read the checkpoint {file}: {error.strerror}.") from error
    immutable = "" if Path(f"{file}-wal").exists() else "&immutable=1"
    db = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro{immutable}", uri=True)
    try:
        applied = _applied(db)
        if MIGRATIONS[0].name not in applied:
            raise CheckpointError(
                f"{file} is not a bulk checkpoint (an SQLite database of another program)."
            )
        if _pending(db, MIGRATIONS):
            db = _migrated_copy(db)
    except BaseException:
        db.close()
        raise
    return db


def _migrated_copy(db: sqlite3.Connection) -> sqlite3.Connection:
    """An in-memory copy of `db`, migrated; `db` is closed and stays as it was."""
    memory = sqlite3.connect(":memory:", isolation_level=None)
    db.backup(memory)
    db.close()
    migrate(memory)
    return memory


@dataclass(frozen=True)
class RowState:
    """A checkpoint row as the sending phase needs it."""

    pass_name: str
    key: str
    line: int
    state: str
    customer_key: str | None
    customer_ref: str | None
    payload: dict[str, Any]
    payload_hash: str
    synced_payload: dict[str, Any] | None
    request_method: str | None
    request_path: str | None
    request_body: bytes | None
    """The exact bytes sent, to send again."""
    request_payload: dict[str, Any] | None
    pivotal_id: str | None
    display_id: int | None
    attempts: int
    origin: str | None = None
    """`created` or `adopted`: how the record became ours (None: not in Pivotal yet)."""
    generation: int = 0
    """Bumped each time an undo deletes the record: the idempotency key derives from it."""
    written_at: str | None = None
    """The record's `updated_at` as our last write (or its adoption) saw it."""


class PlannedRecord(NamedTuple):
    """One planned row for `Checkpoint.upsert_planned`, in the order of its parameters
    (positional parameters bind in a quarter less time than named ones). Built by
    `planned_row`."""

    pass_name: str
    key: str
    line: int
    source: str
    run: int
    state: str
    action: str | None
    customer_key: str | None
    customer_ref: str | None
    payload: str
    payload_hash: str
    cells: str
    error_code: str | None
    error_message: str | None
    updated_at: str


class KnownRow(NamedTuple):
    """What planning needs of a row the checkpoint already holds."""

    state: str
    synced_hash: str | None
    pivotal_id: str | None
    has_request: bool
    """A request was recorded and no answer came: the next run re-sends it."""


class ParentRow(NamedTuple):
    """A customer row as its children see it (`state` is `missing` when unknown)."""

    state: str
    pivotal_id: str | None
    error_message: str | None
    origin: str | None = None
    """`created` when this checkpoint created the customer, `adopted` when it found it."""


class InvalidRow(NamedTuple):
    """A source row that failed validation, as recorded for the errors file."""

    pass_name: str
    line: int
    source: str
    key: str | None
    column: str | None
    code: str
    message: str
    cells_json: str


class RowError(NamedTuple):
    pass_name: str
    key: str
    line: int
    code: str
    message: str


class ProblemRow(NamedTuple):
    """An invalid, failed or skipped row with its original cells (in their source order)."""

    pass_name: str
    source: str
    """The file the row was read from, as named in the errors file's `_file`."""
    line: int
    code: str
    message: str
    state: str
    cells: dict[str, Any]


class ResultRow(NamedTuple):
    pass_name: str
    source: str
    line: int
    key: str | None
    action: str
    pivotal_id: str | None
    display_id: int | None


class PassCounts(NamedTuple):
    total: int
    """Rows of the pass in the run."""
    settled: int
    """Rows no longer pending or in flight."""


@dataclass(frozen=True)
class Run:
    id: int
    resumed: bool
    """True when this continues a run that did not finish."""
    fingerprint: str | None
    planned: bool


class GroupCommit:
    """The writes of concurrent workers committed together: one COMMIT per turn of the loop.

    A worker that must know its writes are durable before it acts (a row marked in flight
    before its request leaves) awaits `durable()`. The first such call in a turn of the event
    loop schedules one COMMIT, for everything every worker wrote so far, and all callers resume
    after it: with 8 workers, a commit serves up to 8 rows instead of one. Writes nobody waits
    for (a row marked done) go with the next commit. If the process dies first, that row is
    found in flight and its request resent byte for byte under the same key, which the API
    answers with a replay: as after a kill between an answer and its commit.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None
        """Why a commit failed (a full disk, say): every later caller is told the same."""

    @property
    def failed(self) -> bool:
        """A commit failed: the open transaction was rolled back and nothing more commits."""
        return self._failure is not None

    async def durable(self) -> None:
        """Return once everything written so far is committed."""
        if self._failure is not None:
            raise self._failure
        if self._waiting is None:
            loop = asyncio.get_running_loop()
            self._waiting = loop.create_future()
            loop.call_soon(self._commit)
        await asyncio.shield(self._waiting)

    def _commit(self) -> None:
        """Run by the event loop: a failure goes to the waiters, not to the loop's log."""
        waiting, self._waiting = self._waiting, None
        if waiting is None:
            return  # `close()` committed first
        try:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN IMMEDIATE")
        except Exception as error:
            self._failure = error
            self._db.rollback()
        if not waiting.done():
            if self._failure is not None:
                waiting.set_exception(self._failure)
            else:
                waiting.set_result(None)

    def close(self) -> None:
        """Commit what is left (its failure raises here); after a failed commit, whose waiters
        were told, nothing more: SQLite rolled that transaction back."""
        if self._waiting is not None and not self._waiting.done():
            self._commit()
        if self._failure is None and self._db.in_transaction:
            self._db.execute("COMMIT")


class Checkpoint:
    """The SQLite checkpoint of one import or export (see the module docstring).

    Every SQLite error on it, read or write, reaches the caller as one `CheckpointError` whose
    remedy never risks the file (`bulk.checkpoint_errors`); `read_only=True` (what `bulk
    status` uses) changes no byte and creates no file.
    """

    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = path
        self._nested = False
        self._holders: dict[str, dict[str, str]] = {}
        """Pass → Pivotal id → the key of the row holding it (`key_of_pivotal_id`)."""
        connect = open_read_only if read_only else _open_for_writing
        with told_as_checkpoint_error(path):
            self._db = Database(connect(path), path)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._nested:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.rollback()
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def grouped_commits(self) -> Iterator[GroupCommit]:
        """Writes inside share transactions, committed by `GroupCommit.durable()` (see there).

        Whatever is written when the block ends is committed, however it ends: every write a
        pass makes is a state the next run can resume from.
        """
        group = GroupCommit(self._db)
        self._db.execute("BEGIN IMMEDIATE")
        self._nested = True
        try:
            yield group
        finally:
            self._nested = False
            group.close()

    @contextmanager
    def rolled_back(self) -> Iterator[None]:
        """Everything inside is undone at the end (a dry run plans without keeping the plan)."""
        self._db.execute("BEGIN IMMEDIATE")
        self._nested = True
        try:
            yield
        finally:
            self._nested = False
            self._db.rollback()

    # -- runs --------------------------------------------------------------------------------

    def begin_run(self) -> Run:
        """Continue the last run if it did not finish, else start a new one."""
        row = self._db.execute(
            "SELECT id, finished_at, fingerprint, planned FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is not None and row[1] is None:
            return Run(row[0], True, row[2], bool(row[3]))
        cursor = self._db.execute("INSERT INTO runs (started_at) VALUES (?)", (now_timestamp(),))
        assert cursor.lastrowid is not None
        return Run(cursor.lastrowid, False, None, False)

    def latest_run(self) -> Run | None:
        """The last run, finished or not, without starting one (`bulk status` reads it)."""
        row = self._db.execute(
            "SELECT id, finished_at, fingerprint, planned FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else Run(row[0], row[1] is None, row[2], bool(row[3]))

    def mark_planned(self, run: Run, fingerprint: str) -> None:
        self._db.execute(
            "UPDATE runs SET planned = 1, fingerprint = ? WHERE id = ?", (fingerprint, run.id)
        )

    def finish_run(self, run: Run) -> None:
        self._db.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (now_timestamp(), run.id))

    # -- planning ----------------------------------------------------------------------------

    def forget_invalid(self, passes: Sequence[str]) -> None:
        """Drop the invalid rows of `passes`, about to be planned again: a pass's invalid rows
        are always its latest plan's (a row fixed since leaves the errors file)."""
        marks = ",".join("?" * len(passes))
        self._db.execute(f"DELETE FROM invalid_rows WHERE pass IN ({marks})", tuple(passes))

    def record_invalid(self, run: Run, rows: Iterable[InvalidRow]) -> None:
        self._db.executemany(
            "INSERT INTO invalid_rows (run, pass, line, source, key, column_name, code, message, "
            "cells) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((run.id, *row) for row in rows),
        )

    def invalid_lines(self, pass_name: str, keys: list[str]) -> dict[str, int]:
        """The keys among `keys` that the latest plan of the pass found invalid, and the line
        each was first found on."""
        found: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, line in self._db.execute(
                f"SELECT key, min(line) FROM invalid_rows WHERE pass = ? AND key IN ({marks}) "
                "GROUP BY key",
                (pass_name, *chunk),
            ):
                found[key] = line
        return found

    def existing(self, pass_name: str, keys: list[str]) -> dict[str, KnownRow]:
        """The rows of `keys` that the checkpoint already holds."""
        found: dict[str, KnownRow] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, state, synced_hash, pivotal_id, has_request in self._db.execute(
                f"SELECT key, state, synced_hash, pivotal_id, request_method IS NOT NULL "
                f"FROM rows WHERE pass = ? AND key IN ({marks})",
                (pass_name, *chunk),
            ):
                found[key] = KnownRow(state, synced_hash, pivotal_id, bool(has_request))
        return found

    def upsert_planned(self, rows: Iterable[PlannedRecord]) -> None:
        """Insert or refresh planned rows.

        A row with an unanswered request (in flight, or failed without an answer) goes back to
        `in_flight` and keeps that request: the next run re-sends it first, byte for byte.
        """
        self._db.executemany(
            """
            INSERT INTO rows (pass, key, line, source, run, state, action, customer_key,
                customer_ref, payload, payload_hash, cells, error_code, error_message, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (pass, key) DO UPDATE SET
                line = excluded.line, source = excluded.source, run = excluded.run,
                state = CASE WHEN rows.request_method IS NOT NULL THEN 'in_flight'
                             ELSE excluded.state END,
                action = CASE WHEN rows.request_method IS NOT NULL THEN rows.action
                              ELSE coalesce(excluded.action, rows.action) END,
                customer_key = excluded.customer_key, customer_ref = excluded.customer_ref,
                payload = excluded.payload, payload_hash = excluded.payload_hash,
                cells = excluded.cells,
                error_code = CASE WHEN rows.request_method IS NOT NULL THEN rows.error_code
                                  ELSE excluded.error_code END,
                error_message = CASE WHEN rows.request_method IS NOT NULL THEN rows.error_message
                                     ELSE excluded.error_message END,
                updated_at = excluded.updated_at
            """,
            rows,
        )

    # -- sending -----------------------------------------------------------------------------

    def rows_to_send(
        self, pass_name: str, run: Run, batch: int = ROWS_READ_AT_ONCE
    ) -> Iterator[RowState]:
        """Pending and in-flight rows of this run in source order, read in batches."""
        last_line = -1
        while True:
            rows = self._db.execute(
                f"SELECT {_ROW_COLUMNS} FROM rows WHERE run = ? AND pass = ? "
                "AND state IN ('pending', 'in_flight') AND line > ? ORDER BY line LIMIT ?",
                (run.id, pass_name, last_line, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _row_state(row)
            last_line = rows[-1][2]

    def parent(self, customer_key: str) -> ParentRow:
        row = self._db.execute(
            "SELECT state, pivotal_id, error_message, origin FROM rows WHERE pass = ? AND key = ?",
            (CUSTOMER.collection, customer_key),
        ).fetchone()
        return ParentRow(*row) if row else ParentRow("missing", None, None)

    def done_customer_ids(self, keys: Collection[str]) -> dict[str, str]:
        """The Pivotal ids of those customers of `keys` whose rows are done."""
        marks = ",".join("?" * len(keys))
        found = self._db.execute(  # no test of pivotal_id here: it would pick its index
            f"SELECT key, pivotal_id FROM rows WHERE pass = ? AND key IN ({marks}) "
            "AND state = 'done'",
            (CUSTOMER.collection, *keys),
        ).fetchall()
        return {key: pivotal_id for key, pivotal_id in found if pivotal_id is not None}

    def key_of_pivotal_id(self, pass_name: str, pivotal_id: str) -> str | None:
        """The key of the row holding the record `pivotal_id`, if one of this pass does.

        The first lookup of a pass reads every id the pass holds into a map, which `mark_done`
        keeps up to date; each hit is checked against the row itself, so an entry that a
        rollback or an undo made stale is never believed (then the table is searched)."""
        holders = self._holders.get(pass_name)
        if holders is None:
            holders = self._holders[pass_name] = dict(
                self._db.execute(
                    "SELECT pivotal_id, key FROM rows WHERE pass = ? AND pivotal_id IS NOT NULL",
                    (pass_name,),
                ).fetchall()
            )
        key = holders.get(pivotal_id)
        if key is None or self._holds(pass_name, key, pivotal_id):
            return key
        found = self._db.execute(
            "SELECT key FROM rows WHERE pass = ? AND pivotal_id = ?", (pass_name, pivotal_id)
        ).fetchone()
        if found is None:
            del holders[pivotal_id]
            return None
        holders[pivotal_id] = found[0]
        return str(found[0])

    def _holds(self, pass_name: str, key: str, pivotal_id: str) -> bool:
        held = self._db.execute(
            "SELECT pivotal_id FROM rows WHERE pass = ? AND key = ?", (pass_name, key)
        ).fetchone()
        return held is not None and held[0] == pivotal_id

    def mark_in_flight(
        self, row: RowState, method: str, path: str, body: bytes, target: dict[str, Any]
    ) -> None:
        """Record the request about to leave, its body's exact bytes (a resend sends them
        again), and the payload the row holds once it succeeds: a resume may find the row's
        planned payload changed since, and must record what this request sent."""
        self._db.execute(
            "UPDATE rows SET state = 'in_flight', request_method = ?, request_path = ?, "
            "request_body = ?, request_payload = coalesce(?, payload), updated_at = ? "
            "WHERE pass = ? AND key = ?",
            (
                method,
                path,
                body,
                _unless_planned(row, target),
                now_timestamp(),
                row.pass_name,
                row.key,
            ),
        )

    def mark_done(
        self,
        row: RowState,
        action: str,
        pivotal_id: str,
        display_id: int | None,
        attempts: int,
        synced: dict[str, Any],
        synced_hash: str,
        *,
        written_at: str | None = None,
        seen: dict[str, Any] | None = None,
    ) -> None:
        """The row now holds `synced` in Pivotal (for an adopted row: what we know of it).

        `written_at` is the record's `updated_at` as the answer showed it (an undo's conflict
        check compares with it); the first `created` or `adopted` sets the row's origin.
        `seen`, the whole record as an adopted row's answer showed it, is kept for
        `remember_before`: the values a later change of any field will need.
        """
        seen_text = None if seen is None else json.dumps(seen, ensure_ascii=False)
        self._db.execute(
            "UPDATE rows SET state = 'done', action = ?, pivotal_id = ?, display_id = ?, "
            "synced_payload = coalesce(?, payload), synced_hash = ?, request_method = NULL, "
            "request_path = NULL, request_body = NULL, request_payload = NULL, "
            "attempts = attempts + ?, error_code = NULL, error_message = NULL, updated_at = ?, "
            "written_at = coalesce(?, written_at), origin = coalesce(origin, CASE ? "
            "WHEN 'created' THEN 'created' WHEN 'adopted' THEN 'adopted' END), "
            "before = CASE WHEN ? IS NULL THEN before "
            "ELSE json_set(coalesce(before, '{}'), '$.seen', json(?)) END "
            "WHERE pass = ? AND key = ?",
            (
                action,
                pivotal_id,
                display_id,
                _unless_planned(row, synced),
                synced_hash,
                attempts,
                now_timestamp(),
                written_at,
                action,
                seen_text,
                seen_text,
                row.pass_name,
                row.key,
            ),
        )
        holders = self._holders.get(row.pass_name)
        if holders is not None:
            holders[pivotal_id] = row.key

    def mark_failed(
        self,
        row: RowState,
        state: str,
        code: str,
        message: str,
        attempts: int,
        *,
        outcome_known: bool = True,
    ) -> None:
        """`failed` (the API refused it or never answered) or `skipped` (its customer failed).

        When no answer came (`outcome_known=False`) the request is kept, so the next run
        re-sends exactly it under the same idempotency key.
        """
        clear_request = _CLEAR_REQUEST if outcome_known else ""
        self._db.execute(
            "UPDATE rows SET state = ?, action = ?, attempts = attempts + ?, error_code = ?, "
            f"error_message = ?, updated_at = ?{clear_request} "
            "WHERE pass = ? AND key = ?",
            (state, state, attempts, code, message, now_timestamp(), row.pass_name, row.key),
        )

    def note_attempts(self, row: RowState, attempts: int, code: str, message: str) -> None:
        """Remember attempts and the last error of a row whose outcome is still unknown."""
        self._db.execute(
            "UPDATE rows SET attempts = attempts + ?, error_code = ?, error_message = ?, "
            "updated_at = ? WHERE pass = ? AND key = ?",
            (attempts, code, message, now_timestamp(), row.pass_name, row.key),
        )

    def row_state(self, pass_name: str, key: str) -> str:
        row = self._db.execute(
            "SELECT state FROM rows WHERE pass = ? AND key = ?", (pass_name, key)
        ).fetchone()
        return str(row[0]) if row else "missing"

    def reload(self, row: RowState) -> RowState:
        found = self._db.execute(
            f"SELECT {_ROW_COLUMNS} FROM rows WHERE pass = ? AND key = ?", (row.pass_name, row.key)
        ).fetchone()
        return _row_state(found)

    def set_action(self, row: RowState, action: str) -> None:
        self._db.execute(
            "UPDATE rows SET action = ? WHERE pass = ? AND key = ?",
            (action, row.pass_name, row.key),
        )

    # -- what an undo needs (migration 006, `bulk.undoing`) -----------------------------------

    @property
    def database(self) -> Database:
        """The connection, for a module that keeps its own table here (`bulk.undoing.ledger`)."""
        return self._db

    def remember_before(self, row: RowState, fields: dict[str, Any], seen_at: str | None) -> None:
        """Before an adopted record is changed: the values its `fields` hold, so that an undo
        can put them back. The whole record as last seen (`mark_done(seen=)`: the adoption's
        lookup, an earlier PATCH's answer) is preferred to `fields`' values, which are only
        the fields the import synced. A field already remembered keeps its first value: that
        is the one from before any change of ours."""
        found = self._db.execute(
            "SELECT before FROM rows WHERE pass = ? AND key = ?", (row.pass_name, row.key)
        ).fetchone()
        before = json.loads(found[0]) if found and found[0] else {}
        seen = before.get("seen") or {}
        if before.get("updated_at") is None:
            before["updated_at"] = seen.get("updated_at", seen_at)
        current = {name: seen.get(name, value) for name, value in fields.items()}
        before["fields"] = {**current, **(before.get("fields") or {})}
        self._db.execute(
            "UPDATE rows SET before = ? WHERE pass = ? AND key = ?",
            (json.dumps(before, ensure_ascii=False), row.pass_name, row.key),
        )

    def record_workspace(self, me: dict[str, Any]) -> None:
        """The workspace (`GET /me`'s organization) the import writes to, kept from the first
        run: an undo refuses a key of another workspace."""
        organization = me.get("organization")
        if not isinstance(organization, dict):
            return
        self._db.execute(
            "INSERT OR IGNORE INTO workspace VALUES (1, ?, ?, ?, ?)",
            (
                _text_or_none(organization.get("id")),
                _text_or_none(organization.get("slug")),
                _text_or_none(organization.get("name")),
                now_timestamp(),
            ),
        )

    def workspace(self) -> dict[str, str | None] | None:
        """The recorded workspace (`id`, `slug`, `name`), or None (an import by an older bulk)."""
        found = self._db.execute(
            "SELECT organization_id, slug, name FROM workspace WHERE id = 1"
        ).fetchone()
        return None if found is None else {"id": found[0], "slug": found[1], "name": found[2]}

    # -- export state ------------------------------------------------------------------------

    def export_document(self) -> dict[str, Any] | None:
        """The export's saved progress (see `bulk.exporting.state`), or None before any."""
        row = self._db.execute("SELECT state FROM export WHERE id = 1").fetchone()
        document: dict[str, Any] | None = json.loads(row[0]) if row else None
        return document

    def save_export_document(self, document: dict[str, Any]) -> None:
        """Replace the export's saved progress, whole, in one statement."""
        self._db.execute(
            "INSERT INTO export (id, state) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            (json.dumps(document),),
        )

    # -- reporting ---------------------------------------------------------------------------

    def action_counts(self, run: Run) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for pass_name, action, state, count in self._db.execute(
            "SELECT pass, action, state, count(*) FROM rows WHERE run = ? GROUP BY 1, 2, 3",
            (run.id,),
        ):
            bucket = counts.setdefault(pass_name, {})
            label = action if state in ("done", "failed", "skipped") else state
            bucket[label] = bucket.get(label, 0) + count
        for pass_name, count in self._db.execute(
            "SELECT pass, count(*) FROM invalid_rows WHERE run = ? GROUP BY 1", (run.id,)
        ):
            counts.setdefault(pass_name, {})["invalid"] = count
        return counts

    def invalid_counts(self, run: Run | None = None) -> dict[str, int]:
        """Per pass, the rows that failed validation: in `run`'s plan, or (None) in each
        pass's latest plan."""
        where, parameters = ("WHERE run = ?", (run.id,)) if run is not None else ("", ())
        return {
            str(pass_name): int(count)
            for pass_name, count in self._db.execute(
                f"SELECT pass, count(*) FROM invalid_rows {where} GROUP BY 1", parameters
            )
        }

    def invalid_count(self, run: Run) -> int:
        row = self._db.execute("SELECT count(*) FROM invalid_rows WHERE run = ?", (run.id,))
        return int(row.fetchone()[0])

    def plan_counts(self, run: Run) -> dict[str, dict[str, int]]:
        """Per pass, what a run would do: create, update, resend, unchanged, skipped, invalid."""
        counts: dict[str, dict[str, int]] = {}
        for pass_name, kind, count in self._db.execute(
            "SELECT pass, CASE WHEN request_method IS NOT NULL THEN 'resend' "
            "WHEN state = 'pending' AND pivotal_id IS NULL THEN 'create' "
            "WHEN state = 'pending' THEN 'update' WHEN state = 'done' THEN 'unchanged' "
            "ELSE state END, count(*) FROM rows WHERE run = ? GROUP BY 1, 2",
            (run.id,),
        ):
            counts.setdefault(pass_name, {})[kind] = count
        for pass_name, count in self._db.execute(
            "SELECT pass, count(*) FROM invalid_rows WHERE run = ? GROUP BY 1", (run.id,)
        ):
            counts.setdefault(pass_name, {})["invalid"] = count
        return counts

    def pass_progress(self, run: Run, pass_name: str) -> PassCounts:
        """How far a pass of this run has come, for a progress bar."""
        total, settled = self._db.execute(
            "SELECT count(*), coalesce(sum(state NOT IN ('pending', 'in_flight')), 0) "
            "FROM rows WHERE run = ? AND pass = ?",
            (run.id, pass_name),
        ).fetchone()
        return PassCounts(int(total), int(settled))

    def state_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for pass_name, state, count in self._db.execute(
            "SELECT pass, state, count(*) FROM rows GROUP BY 1, 2"
        ):
            counts.setdefault(pass_name, {})[state] = count
        return counts

    def last_errors(self, limit: int = 5) -> list[RowError]:
        """The most recent failures."""
        return [
            RowError(*row)
            for row in self._db.execute(
                "SELECT pass, key, line, error_code, error_message FROM rows "
                "WHERE error_code IS NOT NULL ORDER BY updated_at DESC LIMIT ?",
                (limit,),
            )
        ]

    def problem_rows(self, run: Run | None = None) -> Iterator[ProblemRow]:
        """Every invalid, failed and skipped row the checkpoint holds, whichever run met it
        (only `run`'s, when given), by pass, file and line. A failed or skipped row that a
        later plan of its pass found invalid appears once, as invalid."""
        where, parameters = ("", ()) if run is None else ("WHERE run = ?", (run.id,))
        for pass_name, source, line, code, message, state, cells in self._db.execute(
            "SELECT pass, source, line, code, message, state, cells FROM ("
            "SELECT pass, source, line, code, message, 'invalid' AS state, cells, run "
            "FROM invalid_rows UNION ALL "
            "SELECT pass, source, line, error_code, error_message, state, cells, run FROM rows "
            f"WHERE state IN ('failed', 'skipped') AND NOT {_SUPERSEDED}) {where} "
            f"ORDER BY {PASS_ORDER_SQL}, source, line",
            parameters,
        ):
            yield ProblemRow(pass_name, source, line, code, message, state, json.loads(cells))

    def result_rows(self) -> Iterator[ResultRow]:
        """Every row the checkpoint knows, whichever run met it, by pass, file and line: its
        latest action, and its Pivotal ids whenever it exists in Pivotal (a row found invalid
        since keeps the ids its record has)."""
        for row in self._db.execute(
            "SELECT pass, source, line, key, action, pivotal_id, display_id FROM ("
            "SELECT i.pass, i.source, i.line, i.key, 'invalid' AS action, r.pivotal_id, "
            "r.display_id FROM invalid_rows AS i LEFT JOIN rows AS r "
            "ON r.pass = i.pass AND r.key = i.key AND r.run != i.run UNION ALL "
            "SELECT pass, source, line, key, CASE WHEN state IN ('done', 'failed', 'skipped') "
            "THEN action ELSE state END, pivotal_id, display_id FROM rows "
            f"WHERE NOT {_SUPERSEDED}) ORDER BY {PASS_ORDER_SQL}, source, line"
        ):
            yield ResultRow(*row)

    # -- import: resume and strictness (issue 8) --

    def leave_run(self, run: Run) -> None:
        """Detach `run`'s rows before planning it again: a resume plans from the source as it is
        now. Rows the source still has rejoin the run as planning meets them; the others keep
        run 0 ("in no run's source"), so the run never sends them, and they are counted as not
        in the source. The run is unplanned in the same transaction, so a kill mid-plan plans
        again."""
        with self.transaction():
            self._db.execute("UPDATE runs SET planned = 0 WHERE id = ?", (run.id,))
            self._db.execute("UPDATE rows SET run = 0 WHERE run = ?", (run.id,))

    def retry_unanswered(self, run: Run) -> int:
        """Failed rows of `run` whose request never got an answer go back in flight, so this
        run sends exactly that request again (a resume that skips planning); how many."""
        cursor = self._db.execute(
            "UPDATE rows SET state = 'in_flight', updated_at = ? "
            "WHERE run = ? AND state = 'failed' AND request_method IS NOT NULL",
            (now_timestamp(), run.id),
        )
        return cursor.rowcount

    def release_unsent(self, row: RowState) -> None:
        """A request dropped before it ever left (a stop while it waited for a slot): the row is
        pending again, as if it had never been marked in flight."""
        self._db.execute(
            "UPDATE rows SET state = 'pending', updated_at = ?"
            f"{_CLEAR_REQUEST} WHERE pass = ? AND key = ? AND state = 'in_flight'",
            (now_timestamp(), row.pass_name, row.key),
        )

    def unanswered_outside(self, run: Run, passes: Sequence[str]) -> list[RowState]:
        """Rows of `passes` that this run's source no longer has and whose last request got no
        answer (in flight, or failed without one): they are looked up, never sent blind."""
        marks = ",".join("?" * len(passes))
        return [
            _row_state(row)
            for row in self._db.execute(
                f"SELECT {_ROW_COLUMNS} FROM rows WHERE run != ? AND pass IN ({marks}) "
                "AND request_method IS NOT NULL ORDER BY line",
                (run.id, *passes),
            )
        ]

    def not_in_source_counts(self, run: Run) -> dict[str, int]:
        """Per pass, the rows the checkpoint knows that this run's source does not have (a row
        the source has but this run found invalid is counted as invalid instead)."""
        return {
            pass_name: int(count)
            for pass_name, count in self._db.execute(
                f"SELECT pass, count(*) FROM rows WHERE run != ? AND NOT {_SUPERSEDED} GROUP BY 1",
                (run.id,),
            )
        }


PASS_ORDER_SQL = (
    "CASE pass "
    + " ".join(f"WHEN '{schema.collection}' THEN {n}" for n, schema in enumerate(OBJECT_SCHEMAS))
    + f" ELSE {len(OBJECT_SCHEMAS)} END"
)
"""An SQL expression ordering rows by pass, parents first (`ORDER BY` it)."""
_SUPERSEDED = (
    "EXISTS (SELECT 1 FROM invalid_rows AS i WHERE i.pass = rows.pass AND i.key = rows.key "
    "AND i.run != rows.run)"
)
"""A row of `rows` that a later plan of its pass found invalid (not a row of the same plan:
that is a valid row whose duplicate was invalid)."""
_ROW_COLUMNS = (
    "pass, key, line, state, customer_key, customer_ref, payload, payload_hash, synced_payload, "
    "request_method, request_path, request_body, request_payload, pivotal_id, display_id, "
    "attempts, origin, generation, written_at"
)
_CLEAR_REQUEST = (
    ", request_method = NULL, request_path = NULL, request_body = NULL, request_payload = NULL"
)


def _bytes(stored: bytes | str | None) -> bytes | None:
    """A request body as stored: bytes (a checkpoint before exact resends held text)."""
    return stored.encode("utf-8") if isinstance(stored, str) else stored


def planned_row(
    run: Run,
    pass_name: str,
    key: str,
    line: int,
    source: str,
    payload: str,
    cells: str,
    *,
    payload_hash: str | None = None,
    state: str = "pending",
    action: str | None = None,
    customer_key: str | None = None,
    customer_ref: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    updated_at: str | None = None,
) -> PlannedRecord:
    """One row for `Checkpoint.upsert_planned`: `payload` and `cells` are JSON text,
    `payload_hash` is the payload's digest (computed when not given)."""
    return PlannedRecord(
        pass_name,
        key,
        line,
        source,
        run.id,
        state,
        action,
        customer_key,
        customer_ref,
        payload,
        payload_hash if payload_hash is not None else text_digest(payload),
        cells,
        error_code,
        error_message,
        updated_at if updated_at is not None else now_timestamp(),
    )


def _unless_planned(row: RowState, payload: dict[str, Any]) -> str | None:
    """`payload` as stored JSON, or None when it is the row's planned payload, which the row
    already holds as text (`coalesce(?, payload)` copies it: no second encoding per row)."""
    return None if payload is row.payload else canonical_json(payload)


def _text_or_none(value: object) -> str | None:
    return str(value) if value is not None else None


def _load(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


def _row_state(row: tuple[Any, ...]) -> RowState:
    return RowState(
        pass_name=row[0],
        key=row[1],
        line=row[2],
        state=row[3],
        customer_key=row[4],
        customer_ref=row[5],
        payload=json.loads(row[6]),
        payload_hash=row[7],
        synced_payload=_load(row[8]),
        request_method=row[9],
        request_path=row[10],
        request_body=_bytes(row[11]),
        request_payload=_load(row[12]),
        pivotal_id=row[13],
        display_id=row[14],
        attempts=row[15],
        origin=row[16],
        generation=row[17],
        written_at=row[18],
    )
