"""`bulk undo CHECKPOINT`: put a workspace back as it was before the imports of a checkpoint.

Every record the checkpoint created is deleted, children first (onboardings, contacts, then
customers: deleting a customer hides its children, but ours are deleted explicitly all the
same, so that the audit trail is clear and nothing rests on cascade rules). Every record it
adopted and changed gets the fields it changed back to the values they had before its first
change. Nothing else is touched.

Nobody else's work is destroyed: before a record is deleted or restored it is read (`GET`),
and one whose `updated_at` is newer than the one the import's own last write got back was
changed by somebody else since: it is left as it is and reported as a conflict (exit 1), unless
`--force`, which skips the read. The only change of that kind that is ours is the demotion of
a customer's primary contact when the import set another one: it is recognised as such.

The run is as robust as an import and built from the same pieces: the client, its governor
and retries, the lock, Ctrl-C/SIGTERM, progress bars, summary, report and errors file, and
the exit codes. Each row's request is recorded in flight before it leaves
(`bulk.undoing.ledger`), so a kill at any instant resumes with the same command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from bulk.api.client import PivotalClient, encode_body
from bulk.api.connection import open_client
from bulk.checkpoint import Checkpoint, GroupCommit
from bulk.errors import (
    RESUME_HINT,
    ApiStatusError,
    AuthenticationError,
    NoResponseError,
    RequestAbandoned,
    RunInterrupted,
    ServerError,
    UsageError,
)
from bulk.importing.importer import REFUSED, UNREACHABLE, api_failure
from bulk.importing.reports import write_problem_file
from bulk.importing.sending import Reachability
from bulk.interrupts import StopRequest
from bulk.lock import CheckpointLock
from bulk.outcome import RunOutcome
from bulk.outputs import check_writable
from bulk.progress import PassProgress, ProgressFactory, ticking
from bulk.settings import UndoSettings
from bulk.undoing.ledger import DELETE, UNDO_PASSES, UndoLedger, UndoRow
from bulk.undoing.reports import UndoPlan, UndoSummary
from bulk.workers import run_workers


class UndoOutcome(RunOutcome[UndoSummary, UndoPlan]):
    """What an undo did (or, dry, would do), the exit code it earns, and what to say."""

    problems_label: ClassVar[str] = "Conflicts and failures"


async def run_undo(settings: UndoSettings, progress: ProgressFactory | None = None) -> UndoOutcome:
    """Check the workspace, then revert pass by pass; the checkpoint makes it resumable."""
    progress = progress or ProgressFactory(quiet=True)
    if not settings.checkpoint.is_file():
        raise UsageError(
            f"No checkpoint at {settings.checkpoint}.", "Pass the checkpoint of the import."
        )
    check_writable(_outputs(settings))
    with (
        StopRequest(announce=progress.note) as stop,
        CheckpointLock(settings.checkpoint, "bulk undo"),
    ):
        checkpoint = Checkpoint(settings.checkpoint)
        try:
            session = _UndoSession(checkpoint, UndoLedger(checkpoint), settings, time.monotonic())
            return await session.run(progress, stop)
        finally:
            checkpoint.close()


def _outputs(settings: UndoSettings) -> list[tuple[str, Path]]:
    outputs = [("checkpoint", settings.checkpoint), ("errors file", settings.errors_file)]
    if settings.report_path is not None:
        outputs.append(("report", settings.report_path))
    return outputs


def check_workspace(recorded: dict[str, str | None] | None, me: dict[str, Any]) -> None:
    """Refuse (exit 2) a key of another workspace than the one the import wrote to."""
    organization = me.get("organization")
    current = organization if isinstance(organization, dict) else {}
    if recorded is None:
        raise UsageError(
            "The checkpoint does not say which workspace it imported into (an older bulk "
            "wrote it): nothing was undone.",
            "Run the same bulk import once more with its key (unchanged rows send nothing); "
            "it records the workspace.",
        )
    if recorded.get("id") != current.get("id"):
        raise UsageError(
            f"This key belongs to workspace {_named(current)}, but the checkpoint imported into "
            f"{_named(recorded)}: nothing was undone.",
            "Pass a key of the workspace the import wrote to.",
        )


def _named(organization: dict[str, Any]) -> str:
    return f"'{organization.get('slug') or organization.get('name')}' ({organization.get('id')})"


@dataclass
class _UndoSession:
    checkpoint: Checkpoint
    ledger: UndoLedger
    settings: UndoSettings
    started: float
    client: PivotalClient | None = None
    warnings: list[str] = field(default_factory=list)
    unsettled: int = 0
    """Rows whose create never got an answer: not undone, so the undo cannot exit 0."""

    async def run(self, progress: ProgressFactory, stop: StopRequest) -> UndoOutcome:
        try:
            async with open_client(self.settings.connection, stop) as self.client:
                check_workspace(self.checkpoint.workspace(), await self.client.me())
                if self.settings.dry_run:
                    return self._dry_run(self.client)
                self._begin()
                reachability = Reachability(self.client, self.settings.connection.concurrency)
                for pass_name in UNDO_PASSES:
                    if stop.is_set():
                        break
                    await self._undo_pass(pass_name, progress, stop, reachability)
        except RequestAbandoned:
            pass  # the stop came while GET /me waited: nothing was sent
        except (*REFUSED, *UNREACHABLE) as failed:
            return self.finish(3, api_failure(failed, resumable=True))
        if stop.is_set():
            return self.finish(stop.exit_code, str(RunInterrupted(stop.exit_code)))
        return self.finish(None)

    def _begin(self) -> None:
        start = self.ledger.begin()
        self.unsettled = start.unanswered_creates
        if start.unanswered_creates:
            self.warnings.append(
                f"{start.unanswered_creates} rows' creates never got an answer (the import was "
                "stopped mid-request): they are not undone. Run the import again to settle "
                "them, then undo again."
            )

    def _dry_run(self, client: PivotalClient) -> UndoOutcome:
        with self.checkpoint.rolled_back():
            self._begin()
            counts = self.ledger.planned_counts()
        plan = UndoPlan.from_counts(
            counts,
            UNDO_PASSES,
            client.pace(),
            force=self.settings.force,
            ceiling_per_min=self.settings.connection.rate_limit,
        )
        outcome = self.outcome(1 if self.unsettled else 0)  # as the real run would exit
        outcome.plan = plan
        return outcome

    async def _undo_pass(
        self,
        pass_name: str,
        progress: ProgressFactory,
        stop: StopRequest,
        reachability: Reachability,
    ) -> None:
        assert self.client is not None
        total, settled = self.ledger.pass_progress(pass_name)
        if total == 0:
            return
        with progress.for_pass(f"undo {pass_name}", total, settled) as bar:
            runner = UndoPassRunner(
                self.client, self.ledger, bar, stop, reachability, force=self.settings.force
            )
            async with ticking(bar, self.client.waiting_status):
                await runner.run(pass_name, self.settings.connection.concurrency)

    def finish(self, exit_code: int | None, error: str | None = None) -> UndoOutcome:
        outcome = self.outcome(exit_code, error)
        outcome.errors_file = write_problem_file(
            self.settings.errors_file, self.ledger.problem_rows
        )
        return outcome

    def outcome(self, exit_code: int | None, error: str | None = None) -> UndoOutcome:
        """`exit_code` None means: 0 when every record was reverted, else 1."""
        stats = self.client.stats if self.client is not None else None
        summary = UndoSummary.from_outcomes(
            self.ledger.outcome_counts(), UNDO_PASSES, stats, time.monotonic() - self.started
        )
        if exit_code is None:
            exit_code = 1 if summary.has_problems or self.unsettled else 0
        return UndoOutcome(summary, exit_code, list(self.warnings), error)


class UndoPassRunner:
    """Reverts one pass's records with `concurrency` workers, in source order."""

    def __init__(
        self,
        client: PivotalClient,
        ledger: UndoLedger,
        bar: PassProgress,
        stop: StopRequest,
        reachability: Reachability,
        *,
        force: bool,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.bar = bar
        self.stop = stop
        self.reachability = reachability
        self.force = force
        self.commits: GroupCommit | None = None

    async def run(self, pass_name: str, concurrency: int) -> None:
        rows = self.ledger.rows_to_undo(pass_name)

        async def work() -> None:
            while not self.stop.is_set() and (row := next(rows, None)) is not None:
                try:
                    failed = not await self.revert(row)
                except RequestAbandoned:
                    return  # a stop came while the row's request waited: it is not finished
                self.bar.advance(failed=failed)

        with self.ledger.checkpoint.grouped_commits() as self.commits:
            try:
                await run_workers(concurrency, work)
            finally:
                self.commits = None

    async def revert(self, row: UndoRow) -> bool:
        """Delete or restore one record; False when it ends in conflict or failed."""
        if row.method is not None and row.path is not None:
            return await self._send(row, row.method, row.path, row.body)  # exactly again
        path = f"/{row.pass_name}/{row.pivotal_id}"  # passes are named after collections
        if not self.force:
            settled = await self._checked(row, path)
            if settled is not None:
                return settled
        if row.action == DELETE:
            return await self._send(row, "DELETE", path, None)
        return await self._send(row, "PATCH", path, encode_body(row.restored_fields))

    async def _checked(self, row: UndoRow, path: str) -> bool | None:
        """Read the record: None when it may be reverted, else how the row was settled (a
        conflict, a failed read, or a record that somebody else deleted already)."""
        try:
            record = (await self.client.request("GET", path)).body
        except (NoResponseError, ServerError) as error:
            self.ledger.mark_failed(row, _code(error), _no_answer(error), error.attempts)
            await self.reachability.exhausted(error)
            return False
        except ApiStatusError as error:
            if isinstance(error, AuthenticationError):
                raise
            self.reachability.answered()
            if error.status != 404:
                self.ledger.mark_failed(row, error.code, error.api_message, error.attempts)
                return False
            if row.action == DELETE:
                self.ledger.mark_deleted(row, "gone", error.attempts)
                return True
            self.ledger.mark_conflict(
                row, "deleted by somebody else since the import: not restored"
            )
            return False
        self.reachability.answered()
        conflict = self._conflict(row, record)
        if conflict is None:
            return None
        self.ledger.mark_conflict(row, conflict)
        return False

    def _conflict(self, row: UndoRow, record: dict[str, Any]) -> str | None:
        """Why the record may not be reverted (somebody else changed it), or None."""
        current = record.get("updated_at")
        if not isinstance(current, str):
            return None  # nothing to compare: the API always sends it
        if row.written_at is None:
            return (
                "the checkpoint does not hold when the import last wrote this record (an older "
                f"bulk wrote it); check it, then run again with --force to {row.action} it"
            )
        if _instant(current) <= _instant(row.written_at) or self._demoted_by_us(row, record):
            return None
        return (
            f"changed by somebody else since the import wrote it (updated_at {current}, the "
            f"import's last write {row.written_at}): left as it is; run again with --force to "
            f"{row.action} it anyway"
        )

    def _demoted_by_us(self, row: UndoRow, record: dict[str, Any]) -> bool:
        """A primary contact the import demoted itself, by making another contact primary."""
        if record.get("is_primary") is not False or row.synced.get("is_primary") is not True:
            return False
        demoting = self.ledger.last_primary_write(row)
        current = record.get("updated_at")
        return (
            demoting is not None
            and isinstance(current, str)
            and _instant(current) <= _instant(demoting)
        )

    async def _send(self, row: UndoRow, method: str, path: str, body: bytes | None) -> bool:
        """Mark the row in flight with the exact request, then send it; settle the row."""
        self.ledger.mark_in_flight(row, method, path, body)
        if self.commits is not None:
            await self.commits.durable()  # in flight, committed, before the request leaves
        try:
            response = await self.client.request(method, path, body=body)
        except RequestAbandoned as abandoned:
            if not abandoned.sent and row.method is None:
                self.ledger.release_unsent(row)  # it never left: nothing to resolve
            raise
        except AuthenticationError:
            raise  # the run stops; the request stays recorded and is sent again next time
        except (NoResponseError, ServerError) as error:
            self.ledger.mark_failed(
                row, _code(error), _no_answer(error), error.attempts, outcome_known=False
            )
            await self.reachability.exhausted(error)
            return False
        except ApiStatusError as error:
            self.reachability.answered()
            if error.status == 404 and method == "DELETE":
                self.ledger.mark_deleted(row, "gone", error.attempts)
                return True
            self.ledger.mark_failed(row, error.code, error.api_message, error.attempts)
            return False
        self.reachability.answered()
        if method == "DELETE":
            self.ledger.mark_deleted(row, "deleted", response.attempts)
        else:
            self.ledger.mark_restored(row, response.attempts, response.body)
        return True


def _instant(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def _code(error: NoResponseError | ServerError) -> str:
    return error.code if isinstance(error, ServerError) else "no_response"


def _no_answer(error: NoResponseError | ServerError) -> str:
    return f"{error} (no usable answer after {error.attempts} attempts). {RESUME_HINT}"
