"""SQLite storage for the sandbox: every object of every workspace, and idempotency results.

All three object types share one `records` table, because the API treats them alike (envelope,
ids, soft delete, pagination). Each row keeps the object exactly as it is served (`body`, JSON
text) beside the few columns that lists filter and sort on. Calls are synchronous and short; the
server runs them on its event loop, so a write and its idempotency record commit together.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    workspace TEXT NOT NULL,
    object TEXT NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (workspace, object)
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    object TEXT NOT NULL,
    workspace TEXT NOT NULL,
    display_id INTEGER NOT NULL,
    customer_id TEXT,
    created_ms INTEGER NOT NULL,
    deleted_ms INTEGER,
    slug TEXT,
    email TEXT,
    status TEXT,
    state TEXT,
    phase TEXT,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS records_display ON records (workspace, object, display_id);
CREATE INDEX IF NOT EXISTS records_by_age ON records (workspace, object, created_ms);
CREATE INDEX IF NOT EXISTS records_by_parent ON records (customer_id, object, created_ms);
CREATE UNIQUE INDEX IF NOT EXISTS records_live_slug ON records (workspace, slug)
    WHERE object = 'customer' AND deleted_ms IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS records_live_email ON records (customer_id, email)
    WHERE object = 'contact' AND deleted_ms IS NULL;
CREATE TABLE IF NOT EXISTS idempotency (
    workspace TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    response BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (workspace, endpoint, key)
);
"""

_MAX_INTEGER = 2**63 - 1
_INDEXED = ("slug", "email", "status", "state", "phase")
_COLUMNS = "seq, id, object, workspace, display_id, customer_id, created_ms, deleted_ms, body"


@dataclass
class Record:
    """One stored object; `body` is the object exactly as GET serves it."""

    id: str
    object: str
    workspace: str
    display_id: int
    customer_id: str | None
    created_ms: int
    deleted_ms: int | None
    body: dict[str, Any]
    body_text: str
    seq: int | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_ms is not None

    def replace_body(self, body: dict[str, Any]) -> None:
        self.body = body
        self.body_text = encode(body)


@dataclass(frozen=True)
class StoredResult:
    """A successful POST kept for idempotent replay."""

    body_hash: str
    status: int
    response: bytes
    created_ms: int


def encode(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


class Store:
    """The sandbox database: one SQLite connection, WAL when on disk, in memory by default."""

    def __init__(self, path: Path | None = None) -> None:
        self._connection = sqlite3.connect(
            str(path) if path else ":memory:", isolation_level=None, check_same_thread=False
        )
        if path:
            self._connection.execute("PRAGMA journal_mode = WAL")
        self._connection.execute("PRAGMA synchronous = NORMAL")
        self._connection.execute("PRAGMA busy_timeout = 5000")  # another process on the file
        self._connection.executescript(_SCHEMA)

    def close(self) -> None:
        self._connection.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def next_display_id(self, workspace: str, object_name: str) -> int:
        row = self._connection.execute(
            "INSERT INTO counters (workspace, object, last) VALUES (?, ?, 1) "
            "ON CONFLICT (workspace, object) DO UPDATE SET last = last + 1 RETURNING last",
            (workspace, object_name),
        ).fetchone()
        return int(row[0])

    def insert(self, record: Record) -> None:
        cursor = self._connection.execute(
            "INSERT INTO records (id, object, workspace, display_id, customer_id, created_ms, "
            "deleted_ms, slug, email, status, state, phase, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.object,
                record.workspace,
                record.display_id,
                record.customer_id,
                record.created_ms,
                record.deleted_ms,
                *_indexed_values(record),
                record.body_text,
            ),
        )
        record.seq = cursor.lastrowid

    def update(self, record: Record) -> None:
        self._connection.execute(
            "UPDATE records SET deleted_ms = ?, slug = ?, email = ?, status = ?, state = ?, "
            "phase = ?, body = ? WHERE id = ?",
            (record.deleted_ms, *_indexed_values(record), record.body_text, record.id),
        )

    def find(self, workspace: str, object_name: str, reference: str) -> Record | None:
        """The object by `id`, or by `display_id` when `reference` is all digits; deleted too."""
        column, key = _lookup(reference)
        if key is None:
            return None
        row = self._connection.execute(
            f"SELECT {_COLUMNS} FROM records WHERE workspace = ? AND object = ? AND {column} = ?",
            (workspace, object_name, key),
        ).fetchone()
        return _record(row) if row else None

    def live_customer_with_slug(self, workspace: str, slug: str) -> Record | None:
        row = self._connection.execute(
            f"SELECT {_COLUMNS} FROM records WHERE workspace = ? AND object = 'customer' "
            "AND slug = ? AND deleted_ms IS NULL",
            (workspace, slug),
        ).fetchone()
        return _record(row) if row else None

    def live_contacts(self, customer_id: str) -> list[Record]:
        rows = self._connection.execute(
            f"SELECT {_COLUMNS} FROM records WHERE customer_id = ? AND object = 'contact' "
            "AND deleted_ms IS NULL",
            (customer_id,),
        ).fetchall()
        return [_record(row) for row in rows]

    def page(
        self,
        workspace: str,
        object_name: str,
        *,
        limit: int,
        older_than_ms: int | None = None,
        filters: dict[str, str] | None = None,
    ) -> list[tuple[str, int]]:
        """Up to `limit` live rows as (body, created_ms), newest first.

        Contacts and onboardings of a deleted customer are hidden like deleted rows.
        """
        clauses = [
            "r.workspace = ?",
            "r.object = ?",
            "r.deleted_ms IS NULL",
            "p.deleted_ms IS NULL",
        ]
        parameters: list[Any] = [workspace, object_name]
        if older_than_ms is not None:
            clauses.append("r.created_ms < ?")
            parameters.append(older_than_ms)
        for column, value in (filters or {}).items():
            if column not in (*_INDEXED, "customer_id"):
                raise ValueError(f"cannot filter on {column}")
            clauses.append(f"r.{column} = ?")
            parameters.append(value)
        parameters.append(limit)
        rows = self._connection.execute(
            "SELECT r.body, r.created_ms FROM records r "
            "LEFT JOIN records p ON p.id = r.customer_id "
            f"WHERE {' AND '.join(clauses)} ORDER BY r.created_ms DESC, r.seq DESC LIMIT ?",
            parameters,
        ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def live_bodies(self, workspace: str, object_name: str) -> list[dict[str, Any]]:
        """Every live object of a type, oldest first (for inspection, not an API route)."""
        rows = self._connection.execute(
            "SELECT body FROM records WHERE workspace = ? AND object = ? AND deleted_ms IS NULL "
            "ORDER BY seq",
            (workspace, object_name),
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def stored_result(self, workspace: str, endpoint: str, key: str) -> StoredResult | None:
        row = self._connection.execute(
            "SELECT body_hash, status, response, created_ms FROM idempotency "
            "WHERE workspace = ? AND endpoint = ? AND key = ?",
            (workspace, endpoint, key),
        ).fetchone()
        return StoredResult(row[0], row[1], bytes(row[2]), row[3]) if row else None

    def store_result(self, workspace: str, endpoint: str, key: str, result: StoredResult) -> None:
        self._connection.execute(
            "INSERT OR REPLACE INTO idempotency "
            "(workspace, endpoint, key, body_hash, status, response, created_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                workspace,
                endpoint,
                key,
                result.body_hash,
                result.status,
                result.response,
                result.created_ms,
            ),
        )

    def forget_results_before(self, cutoff_ms: int) -> None:
        self._connection.execute("DELETE FROM idempotency WHERE created_ms < ?", (cutoff_ms,))


def _lookup(reference: str) -> tuple[str, int | str | None]:
    """All ASCII digits select `display_id` (None when out of SQLite's range), else `id`."""
    if not (reference.isascii() and reference.isdigit()):
        return "id", reference
    number = int(reference)
    return "display_id", number if number <= _MAX_INTEGER else None


def _indexed_values(record: Record) -> tuple[Any, ...]:
    return tuple(record.body.get(column) for column in _INDEXED)


def _record(row: tuple[Any, ...]) -> Record:
    seq, id_, object_name, workspace, display_id, customer_id, created_ms, deleted_ms, text = row
    return Record(
        id=id_,
        object=object_name,
        workspace=workspace,
        display_id=display_id,
        customer_id=customer_id,
        created_ms=created_ms,
        deleted_ms=deleted_ms,
        body=json.loads(text),
        body_text=text,
        seq=seq,
    )
