"""`bulk import`: validate every row, then three passes — customers, contacts, onboardings.

Exactly once: every POST carries an idempotency key derived from the row's identity, and the
row is marked in flight (with the exact request) in the checkpoint before the request leaves.
An answer marks it done; no answer leaves the request recorded, so the next attempt or the next
run re-sends it byte for byte and the API replays the first result instead of creating twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bulk.api.client import PivotalClient, encode_body
from bulk.api.connection import open_client
from bulk.checkpoint import Checkpoint, RowState, Run
from bulk.errors import (
    RESUME_HINT,
    ApiStatusError,
    AuthenticationError,
    NoResponseError,
    ServerError,
    as_sentence,
)
from bulk.importing.conflicts import ConflictResolver, display_id_of
from bulk.importing.planning import (
    OpenSource,
    PlanOptions,
    PlanOutcome,
    fingerprint,
    open_sources,
    plan_import,
)
from bulk.importing.reports import ImportSummary, PlanSummary, write_errors_file, write_results_file
from bulk.importing.rows import payload_hash
from bulk.importing.sources import discover_sources
from bulk.interrupts import stop_on_interrupt
from bulk.progress import PassProgress, ProgressFactory
from bulk.schema import CONTACT, CUSTOMER, ONBOARDING
from bulk.settings import ImportSettings


@dataclass
class ImportOutcome:
    """What a run did: its summary, the exit code it earns, and what to tell the user."""

    summary: ImportSummary
    exit_code: int
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    plan: PlanSummary | None = None
    errors_file: Path | None = None
    results_file: Path | None = None

    def render(self) -> str:
        text = self.plan.render() if self.plan is not None else self.summary.render()
        if self.errors_file is not None:
            text += f"\nProblem rows: {self.errors_file}"
        return text

    def to_json(self) -> dict[str, Any]:
        report: dict[str, Any] = {"summary": self.summary.to_json(), "exit_code": self.exit_code}
        if self.plan is not None:
            report["plan"] = asdict(self.plan)
        return report


def idempotency_key(pass_name: str, key: str) -> str:
    """Stable across runs and machines: the same row always sends the same key."""
    digest = hashlib.sha256(f"{pass_name}\x00{key}".encode()).hexdigest()[:40]
    return f"bulk-{pass_name}-{digest}"


def changed_fields(synced: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body turning `synced` into `payload`; a field no longer set is cleared."""
    body = {name: value for name, value in payload.items() if synced.get(name) != value}
    body.update({name: None for name in synced if name not in payload})
    return body


async def run_import(
    settings: ImportSettings, progress: ProgressFactory | None = None
) -> ImportOutcome:
    """Plan, then send, then report; the checkpoint makes every step resumable."""
    started = time.monotonic()
    options = plan_options(settings)
    sources = open_sources(discover_sources(settings.folders, dict(settings.files)), options)
    settings = replace(settings, passes=tuple(opened.file.pass_name for opened in sources))
    dry_run_in_memory = settings.dry_run and not settings.checkpoint.exists()
    checkpoint = Checkpoint(":memory:" if dry_run_in_memory else settings.checkpoint)
    try:
        if settings.dry_run:
            return _dry_run(checkpoint, sources, settings, options, started)
        run = checkpoint.begin_run()
        plan = _plan_if_needed(checkpoint, run, sources, options)
        session = _ImportSession(checkpoint, run, settings, plan, started)
        if settings.strict and plan.invalid:
            return session.finish(2, f"{plan.invalid} invalid rows and --strict: nothing was sent.")
        return await session.send_all(progress or ProgressFactory(quiet=True))
    finally:
        checkpoint.close()


def plan_options(settings: ImportSettings) -> PlanOptions:
    """The few settings that shape the plan."""
    return PlanOptions(settings.mapping, settings.encoding, settings.force, settings.passes)


def _plan_if_needed(
    checkpoint: Checkpoint, run: Run, sources: list[OpenSource], options: PlanOptions
) -> PlanOutcome:
    """Resuming with unchanged sources skips re-reading them: the plan is already stored."""
    current = fingerprint(sources, options)
    if run.resumed and run.planned and run.fingerprint == current:
        return PlanOutcome(invalid_by_pass={"all": checkpoint.invalid_count(run)})
    plan = plan_import(checkpoint, run, sources, options)
    checkpoint.mark_planned(run, current)
    return plan


def _dry_run(
    checkpoint: Checkpoint,
    sources: list[OpenSource],
    settings: ImportSettings,
    options: PlanOptions,
    started: float,
) -> ImportOutcome:
    """Plan without keeping the plan: count what would be sent, report the invalid rows."""
    with checkpoint.rolled_back():
        run = checkpoint.begin_run()
        plan = plan_import(checkpoint, run, sources, options, record=False)
        session = _ImportSession(checkpoint, run, settings, plan, started)
        outcome = session.outcome(1 if plan.invalid else 0)
        outcome.errors_file = write_errors_file(checkpoint, run, settings.errors_file)
    counts = {name: {**kinds, "invalid": 0} for name, kinds in plan.kinds.items()}
    for name, invalid in plan.invalid_by_pass.items():
        counts.setdefault(name, {})["invalid"] = invalid
    outcome.plan = PlanSummary.from_counts(counts, settings.connection.rate_limit)
    return outcome


@dataclass
class _ImportSession:
    """One run of an import after planning: sending, then the outcome and its files."""

    checkpoint: Checkpoint
    run: Run
    settings: ImportSettings
    plan: PlanOutcome
    started: float
    client: PivotalClient | None = None

    async def send_all(self, progress: ProgressFactory) -> ImportOutcome:
        stop = asyncio.Event()
        try:
            with stop_on_interrupt(stop):
                async with open_client(self.settings.connection) as self.client:
                    await self.client.me()  # a bad key or a dead API stops here, before writes
                    for pass_name in self.settings.passes:
                        if stop.is_set():
                            break
                        await self._send_pass(pass_name, progress, stop)
        except (AuthenticationError, NoResponseError) as refused:
            return self.finish(3, f"The API refused the run: {as_sentence(refused)} {RESUME_HINT}")
        if stop.is_set():
            return self.finish(130, f"Interrupted. {RESUME_HINT}")
        self.checkpoint.finish_run(self.run)
        return self.finish(None)

    async def _send_pass(
        self, pass_name: str, progress: ProgressFactory, stop: asyncio.Event
    ) -> None:
        assert self.client is not None
        total, settled = self.checkpoint.pass_progress(self.run, pass_name)
        with progress.for_pass(pass_name, total, settled) as bar:
            runner = PassRunner(
                self.client,
                self.checkpoint,
                self.run,
                pass_name,
                bar,
                stop,
                concurrency=self.settings.connection.concurrency,
                force=self.settings.force,
            )
            await runner.run()

    def finish(self, exit_code: int | None, error: str | None = None) -> ImportOutcome:
        """The outcome, with the errors and results files written from the checkpoint."""
        outcome = self.outcome(exit_code, error)
        outcome.errors_file = write_errors_file(
            self.checkpoint, self.run, self.settings.errors_file
        )
        outcome.results_file = write_results_file(
            self.checkpoint, self.run, self.settings.results_file
        )
        return outcome

    def outcome(self, exit_code: int | None, error: str | None = None) -> ImportOutcome:
        """`exit_code` None means: 0 when every row is done, else 1."""
        stats = self.client.stats if self.client is not None else None
        summary = ImportSummary.from_counts(
            self.checkpoint.action_counts(self.run),
            self.settings.passes,
            stats,
            time.monotonic() - self.started,
        )
        if exit_code is None:
            exit_code = 1 if summary.has_problems else 0
        return ImportOutcome(summary, exit_code, self.plan.warnings, error)


class PassRunner:
    """Sends one pass's pending rows with `concurrency` workers, in source order."""

    def __init__(
        self,
        client: PivotalClient,
        checkpoint: Checkpoint,
        run: Run,
        pass_name: str,
        bar: PassProgress,
        stop: asyncio.Event,
        *,
        concurrency: int,
        force: bool,
    ) -> None:
        self.client = client
        self.checkpoint = checkpoint
        self.run_ = run
        self.pass_name = pass_name
        self.concurrency = concurrency
        self.force = force
        """PATCH whole payloads, not only the changed fields."""
        self.bar = bar
        self.stop = stop
        self.conflicts = ConflictResolver(client, checkpoint)

    async def run(self) -> None:
        """Workers share one iterator over the checkpoint's pending rows (source order)."""
        rows = self.checkpoint.rows_to_send(self.pass_name, self.run_)
        workers = [asyncio.create_task(self._worker(rows)) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise

    async def _worker(self, rows: Iterator[RowState]) -> None:
        while not self.stop.is_set() and (row := next(rows, None)) is not None:
            await self.sync(row)
            state = self.checkpoint.row_state(self.pass_name, row.key)
            self.bar.advance(failed=state in ("failed", "skipped"))

    async def sync(self, row: RowState) -> None:
        """Bring one row to `done`, `failed` or `skipped`."""
        if row.request_method is not None:
            await self._resend(row)
        elif row.pivotal_id is None:
            await self._create(row)
        else:
            await self._update(row)

    async def _resend(self, row: RowState) -> None:
        """A request from before whose answer never came: send exactly it again."""
        assert row.request_path is not None and row.request_body is not None
        action = "created" if row.request_method == "POST" else "updated"
        target = row.request_payload or row.payload
        method = row.request_method or "POST"
        await self._send(row, method, row.request_path, row.request_body, target, action)
        fresh = self.checkpoint.reload(row)
        if fresh.state == "done" and fresh.synced_payload != fresh.payload:
            await self._update(fresh)

    async def _create(self, row: RowState) -> None:
        body = dict(row.payload)
        if self.pass_name == CUSTOMER.collection:
            path = f"/{CUSTOMER.collection}"
        else:
            parent_id = self._parent_id(row)
            if parent_id is None:
                return
            if self.pass_name == CONTACT.collection:
                path = f"/{CUSTOMER.collection}/{parent_id}/{CONTACT.collection}"
            else:
                path = f"/{ONBOARDING.collection}"
                body["customer_id"] = parent_id
        await self._send(row, "POST", path, encode_body(body), row.payload, "created")

    async def _update(self, row: RowState) -> None:
        assert row.pivotal_id is not None
        synced = row.synced_payload or {}
        body = dict(row.payload) if self.force else changed_fields(synced, row.payload)
        if not body:
            self.checkpoint.mark_done(
                row,
                "unchanged",
                row.pivotal_id,
                row.display_id,
                0,
                row.payload,
                payload_hash(row.payload),
            )
            return
        path = f"/{self.pass_name}/{row.pivotal_id}"  # passes are named after collections
        await self._send(row, "PATCH", path, encode_body(body), row.payload, "updated")

    def _parent_id(self, row: RowState) -> str | None:
        """The customer's Pivotal id, or None after marking the row skipped."""
        if row.customer_ref is not None:
            return row.customer_ref
        assert row.customer_key is not None
        parent = self.checkpoint.parent(row.customer_key)
        if parent.state == "done" and parent.pivotal_id is not None:
            return parent.pivotal_id
        reason = f"customer '{row.customer_key}' is {parent.state}"
        if parent.error_message:
            reason += f": {parent.error_message}"
        self.checkpoint.mark_failed(row, "skipped", "customer_not_imported", reason, 0)
        return None

    async def _send(
        self,
        row: RowState,
        method: str,
        path: str,
        body: bytes,
        target: dict[str, Any],
        action: str,
    ) -> None:
        """Mark the row in flight with the body's exact bytes, then send exactly them."""
        self.checkpoint.mark_in_flight(row, method, path, body, target)
        key = idempotency_key(self.pass_name, row.key) if method == "POST" else None
        try:
            response = await self.client.request(method, path, body=body, idempotency_key=key)
        except (AuthenticationError, NoResponseError):
            raise  # the run stops; the request stays recorded and is re-sent next time
        except ServerError as error:
            self.checkpoint.mark_failed(
                row, "failed", error.code, _no_answer(error), error.attempts, outcome_known=False
            )
        except ApiStatusError as error:
            # only a create can collide with a record we already made
            if method == "POST" and await self.conflicts.adopt(
                row, error, path, target, self._update
            ):
                return
            self.checkpoint.mark_failed(
                row, "failed", error.code, error.api_message, error.attempts
            )
        else:
            pivotal_id = response.body.get("id")
            if not isinstance(pivotal_id, str | int) or isinstance(pivotal_id, bool):
                message = "the API answered without an id; run again to retry"
                self.checkpoint.mark_failed(
                    row, "failed", "bad_response", message, response.attempts, outcome_known=False
                )
                return
            self.checkpoint.mark_done(
                row,
                action,
                str(pivotal_id),
                display_id_of(response.body),
                response.attempts,
                target,
                payload_hash(target),
            )


def _no_answer(error: ServerError) -> str:
    return f"{error} (no usable answer after {error.attempts} attempts; run again to retry)"
