"""The undo's own state in the checkpoint: one `undo` row per record the undo must revert.

A row moves `undo_pending` → `undo_in_flight` → `undone` | `conflict` | `failed`. It is marked
`undo_in_flight`, with the exact request it is about to send, in a committed transaction
*before* that request leaves, so after a kill at any instant the next run re-sends exactly it: a
second DELETE of a deleted row answers the same body, and the restoring PATCH sets the same
values again. An answer settles the row and, in the same transaction, the import's own row
(`rows`): a deleted record leaves it (no Pivotal id; the generation of its idempotency key
bumped, so a re-import creates it anew), a restored one holds its earlier values as synced.

Which records an undo reverts comes from the import's rows (migration 006): those it `created`
are deleted; those it `adopted` and changed (their `before` values recorded) are restored;
nothing else is touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from bulk.checkpoint import PASS_ORDER_SQL, Checkpoint, ProblemRow
from bulk.importing.rows import payload_hash
from bulk.schema import CONTACT, now_timestamp
from bulk.settings import PASSES

UNDO_PASSES = tuple(reversed(PASSES))
"""Children first: onboardings, contacts, then customers."""
UNDO_STATES = ("undo_pending", "undo_in_flight", "undone", "conflict", "failed")
DELETE = "delete"
RESTORE = "restore"
OUTCOMES = ("deleted", "restored", "gone", "conflict", "failed")
"""How an undo row ended: `gone` is a record somebody else had deleted already."""

_TARGETS = (
    "FROM rows WHERE pivotal_id IS NOT NULL AND (origin = 'created' OR (origin = 'adopted' "
    "AND json_extract(before, '$.fields') IS NOT NULL))"
)
"""The import's rows an undo reverts: records it created, adopted records it changed."""


@dataclass(frozen=True)
class UndoRow:
    """One record to revert, with what the import knows of it."""

    pass_name: str
    key: str
    line: int
    state: str
    action: str
    """`delete` or `restore`."""
    pivotal_id: str
    customer: str | None
    """The customer's key (or Pivotal reference) of a contact or onboarding."""
    synced: dict[str, Any]
    """What the import last wrote (or found, for an adopted record)."""
    before: dict[str, Any] | None
    """`{"fields": {...}, "updated_at": ...}`: an adopted record's values before our change."""
    written_at: str | None
    method: str | None
    path: str | None
    body: bytes | None
    """The request recorded in flight, to send again exactly."""

    @property
    def restored_fields(self) -> dict[str, Any]:
        return dict((self.before or {}).get("fields") or {})


class UndoStart(NamedTuple):
    resumed: bool
    """An undo that had not finished goes on: its settled rows count in its summary."""
    unanswered_creates: int
    """Rows whose create never got an answer: the import must settle them first."""


class UndoLedger:
    """The `undo` table of one checkpoint (created by migration 006)."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self._db = checkpoint.database

    def begin(self) -> UndoStart:
        """Select the records to revert. A new undo forgets what an earlier one settled (a
        reverted record is no target any more; a conflict or a failure is tried again); a
        request left without an answer stays in flight, to be sent again first."""
        with self.checkpoint.transaction():
            resumed = self._db.execute(
                "SELECT count(*) FROM undo WHERE state IN ('undo_pending', 'undo_in_flight')"
            ).fetchone()[0]
            if not resumed:
                self._db.execute("DELETE FROM undo WHERE method IS NULL")
            self._db.execute(
                "INSERT INTO undo (pass, key, state, action, updated_at) "
                "SELECT pass, key, 'undo_pending', CASE origin WHEN 'created' THEN 'delete' "
                f"ELSE 'restore' END, ? {_TARGETS} "
                "ON CONFLICT (pass, key) DO UPDATE SET "
                "state = CASE WHEN undo.method IS NOT NULL THEN 'undo_in_flight' "
                "ELSE 'undo_pending' END, "
                "action = CASE WHEN undo.method IS NOT NULL THEN undo.action "
                "ELSE excluded.action END, "
                "outcome = NULL, updated_at = excluded.updated_at",
                (now_timestamp(),),
            )
            unanswered = self._db.execute(
                "SELECT count(*) FROM rows WHERE pivotal_id IS NULL AND request_method = 'POST'"
            ).fetchone()[0]
        return UndoStart(bool(resumed), int(unanswered))

    def rows_to_undo(self, pass_name: str, batch: int = 1000) -> Iterator[UndoRow]:
        """The pass's rows still to revert, in source order, read in batches."""
        after: tuple[int, str] = (-1, "")
        while True:
            rows = self._db.execute(
                f"SELECT {_UNDO_COLUMNS} FROM undo u JOIN rows r USING (pass, key) "
                "WHERE u.pass = ? AND u.state IN ('undo_pending', 'undo_in_flight') "
                "AND (r.line, u.key) > (?, ?) ORDER BY r.line, u.key LIMIT ?",
                (pass_name, *after, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _undo_row(row)
            after = (rows[-1][2], rows[-1][1])

    def pass_progress(self, pass_name: str) -> tuple[int, int]:
        """(rows of the pass in this undo, rows settled)."""
        total, settled = self._db.execute(
            "SELECT count(*), coalesce(sum(state NOT IN ('undo_pending', 'undo_in_flight')), 0) "
            "FROM undo WHERE pass = ?",
            (pass_name,),
        ).fetchone()
        return int(total), int(settled)

    # -- state changes -----------------------------------------------------------------------

    def mark_in_flight(self, row: UndoRow, method: str, path: str, body: bytes | None) -> None:
        self._db.execute(
            "UPDATE undo SET state = 'undo_in_flight', method = ?, path = ?, body = ?, "
            "updated_at = ? WHERE pass = ? AND key = ?",
            (method, path, body, now_timestamp(), row.pass_name, row.key),
        )

    def release_unsent(self, row: UndoRow) -> None:
        """A request dropped before it left (a stop while it waited for a slot)."""
        self._db.execute(
            "UPDATE undo SET state = 'undo_pending', method = NULL, path = NULL, body = NULL, "
            "updated_at = ? WHERE pass = ? AND key = ?",
            (now_timestamp(), row.pass_name, row.key),
        )

    def mark_deleted(self, row: UndoRow, outcome: str, attempts: int) -> None:
        """The record is gone: the import's row leaves Pivotal, and its next create (a new
        generation, so a new idempotency key) makes a new record."""
        with self.checkpoint.transaction():
            self._settle(row, "undone", outcome, attempts)
            self._db.execute(
                "UPDATE rows SET state = 'pending', action = NULL, pivotal_id = NULL, "
                "display_id = NULL, synced_hash = NULL, origin = NULL, before = NULL, "
                "generation = generation + 1, error_code = NULL, error_message = NULL, "
                "updated_at = ? WHERE pass = ? AND key = ?",
                (now_timestamp(), row.pass_name, row.key),
            )

    def mark_restored(self, row: UndoRow, attempts: int, record: dict[str, Any]) -> None:
        """The record (as the PATCH answered) holds its earlier values again: that is what the
        import has synced now, so a re-import changes it again and remembers them first."""
        synced = {**row.synced, **row.restored_fields}
        updated_at = record.get("updated_at")
        written_at = updated_at if isinstance(updated_at, str) else None
        with self.checkpoint.transaction():
            self._settle(row, "undone", "restored", attempts)
            self._db.execute(
                "UPDATE rows SET synced_payload = ?, synced_hash = ?, "
                "before = json_object('seen', json(?)), "
                "written_at = coalesce(?, written_at), updated_at = ? "
                "WHERE pass = ? AND key = ?",
                (
                    json.dumps(synced, ensure_ascii=False),
                    payload_hash(synced),
                    json.dumps(record, ensure_ascii=False),
                    written_at,
                    now_timestamp(),
                    row.pass_name,
                    row.key,
                ),
            )

    def mark_conflict(self, row: UndoRow, message: str) -> None:
        self._settle(row, "conflict", "conflict", 0, "changed_since_import", message)

    def mark_failed(
        self,
        row: UndoRow,
        code: str,
        message: str,
        attempts: int,
        *,
        outcome_known: bool = True,
    ) -> None:
        """Without an answer (`outcome_known=False`) the request is kept, to be sent again."""
        self._settle(row, "failed", "failed", attempts, code, message, keep=not outcome_known)

    def _settle(
        self,
        row: UndoRow,
        state: str,
        outcome: str,
        attempts: int,
        code: str | None = None,
        message: str | None = None,
        *,
        keep: bool = False,
    ) -> None:
        clear = "" if keep else ", method = NULL, path = NULL, body = NULL"
        self._db.execute(
            f"UPDATE undo SET state = ?, outcome = ?, attempts = attempts + ?, error_code = ?, "
            f"error_message = ?, updated_at = ?{clear} WHERE pass = ? AND key = ?",
            (state, outcome, attempts, code, message, now_timestamp(), row.pass_name, row.key),
        )

    # -- what the conflict check asks --------------------------------------------------------

    def last_primary_write(self, row: UndoRow) -> str | None:
        """When we last wrote another primary contact of the row's customer: setting one
        demotes the customer's previous primary, which changes that contact's `updated_at`
        without anybody else touching it."""
        if row.pass_name != CONTACT.collection or row.customer is None:
            return None
        found = self._db.execute(
            "SELECT max(written_at) FROM rows WHERE pass = ? AND key != ? "
            "AND coalesce(customer_key, customer_ref) = ? "
            "AND json_extract(synced_payload, '$.is_primary') = 1",
            (CONTACT.collection, row.key, row.customer),
        ).fetchone()
        return found[0] if found else None

    # -- reporting ---------------------------------------------------------------------------

    def outcome_counts(self) -> dict[str, dict[str, int]]:
        """Per pass, this undo's rows by outcome (`pending` for those not settled yet)."""
        counts: dict[str, dict[str, int]] = {}
        for pass_name, outcome, count in self._db.execute(
            "SELECT pass, coalesce(outcome, 'pending'), count(*) FROM undo GROUP BY 1, 2"
        ):
            counts.setdefault(pass_name, {})[outcome] = count
        return counts

    def planned_counts(self) -> dict[str, dict[str, int]]:
        """Per pass, what is left to do: `delete`, `restore`, and `resend` (in flight)."""
        counts: dict[str, dict[str, int]] = {}
        for pass_name, kind, count in self._db.execute(
            "SELECT pass, CASE WHEN state = 'undo_in_flight' THEN 'resend' ELSE action END, "
            "count(*) FROM undo WHERE state IN ('undo_pending', 'undo_in_flight') GROUP BY 1, 2"
        ):
            counts.setdefault(pass_name, {})[kind] = count
        return counts

    def problem_rows(self) -> Iterator[ProblemRow]:
        """Conflicts and failures, with the import's original cells."""
        for pass_name, source, line, code, message, state, cells in self._db.execute(
            "SELECT u.pass, r.source, r.line, u.error_code, u.error_message, u.state, r.cells "
            "FROM undo u JOIN rows r USING (pass, key) WHERE u.state IN ('conflict', 'failed') "
            f"ORDER BY {PASS_ORDER_SQL}, r.source, r.line"
        ):
            yield ProblemRow(pass_name, source, line, code, message, state, json.loads(cells))


def state_counts(checkpoint: Checkpoint) -> dict[str, dict[str, int]]:
    """Per pass, the undo rows by state (empty when no undo ever ran): for `bulk status`."""
    counts: dict[str, dict[str, int]] = {}
    for pass_name, state, count in checkpoint.database.execute(
        "SELECT pass, state, count(*) FROM undo GROUP BY 1, 2"
    ):
        counts.setdefault(pass_name, {})[state] = count
    return counts


_UNDO_COLUMNS = (
    "u.pass, u.key, r.line, u.state, u.action, r.pivotal_id, "
    "coalesce(r.customer_key, r.customer_ref), r.synced_payload, r.before, r.written_at, "
    "u.method, u.path, u.body"
)


def _undo_row(row: tuple[Any, ...]) -> UndoRow:
    return UndoRow(
        pass_name=row[0],
        key=row[1],
        line=row[2],
        state=row[3],
        action=row[4],
        pivotal_id=row[5],
        customer=row[6],
        synced=json.loads(row[7]) if row[7] else {},
        before=json.loads(row[8]) if row[8] else None,
        written_at=row[9],
        method=row[10],
        path=row[11],
        body=row[12],
    )
