"""`bulk import`: validate every row, then three passes — customers, contacts, onboardings.

Exactly once: every POST carries an idempotency key derived from the row's identity, and the
row is marked in flight (with the exact request) in the checkpoint before the request leaves.
An answer marks it done; no answer leaves the request recorded, so the next attempt or the next
run re-sends it byte for byte and the API replays the first result instead of creating twice.

A run never surprises its user: before anything is sent the sources' headers are read, every
output path is checked writable and the checkpoint is locked against a second run; `--strict`
sends nothing if any row is invalid; one `StopRequest` spans planning and sending, so a signal
stops either at once with the summary and a resumable checkpoint; a row whose request exhausts
its retries fails alone (see `Reachability` for when the API as a whole is unreachable).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bulk.api.client import PivotalClient, encode_body
from bulk.api.connection import open_client
from bulk.api.estimate import Pace
from bulk.checkpoint import Checkpoint, GroupCommit, RowState, Run
from bulk.errors import (
    RESUME_HINT,
    ApiError,
    ApiStatusError,
    ApiUnreachableError,
    AuthenticationError,
    NoResponseError,
    NotTheApiError,
    RequestAbandoned,
    RunInterrupted,
    ServerError,
    as_sentence,
)
from bulk.importing.conflicts import ConflictResolver, display_id_of
from bulk.importing.errors_input import FORMAT as ERRORS_FORMAT
from bulk.importing.mapping import load_mapping
from bulk.importing.planning import (
    OpenSource,
    PlanOptions,
    PlanOutcome,
    StopCheck,
    fingerprint,
    open_sources,
    plan_import,
)
from bulk.importing.reports import (
    ImportSummary,
    PlanSummary,
    errors_file_notes,
    invalid_preview,
    write_errors_file,
    write_results_file,
)
from bulk.importing.rows import payload_hash
from bulk.importing.sources import discover_sources
from bulk.interrupts import StopRequest
from bulk.lock import CheckpointLock
from bulk.outcome import RunOutcome
from bulk.outputs import check_writable
from bulk.progress import PassProgress, ProgressFactory, ticking
from bulk.schema import CONTACT, CUSTOMER, ONBOARDING
from bulk.settings import ImportSettings
from bulk.workers import run_workers

KEY_REMEDY = "Check --api-key or PIVOTAL_API_KEY."
REFUSED = (AuthenticationError, NotTheApiError)
"""The API will not take this key or URL: fixing it is the remedy, not running again."""
UNREACHABLE = (ApiUnreachableError, NoResponseError, ServerError)
"""No usable answer at all: running again later resumes."""


@dataclass
class ImportOutcome(RunOutcome[ImportSummary, PlanSummary]):
    """What a run did: its summary, the exit code it earns, and what to tell the user."""

    results_file: Path | None = None
    fed_back: tuple[Path, ...] = ()
    """Errors files this run read as its source."""

    def render(self) -> str:
        text = self.plan.render() if self.plan is not None else self.summary.render()
        return "\n".join([text, *errors_file_notes(self.errors_file, self.fed_back)])


def idempotency_key(pass_name: str, key: str, generation: int = 0, scope: str = "") -> str:
    """Stable across runs and machines: the same row always sends the same key. An undo that
    deleted the row's record bumps its `generation`, so its next create is a new request and
    not a replay of the deleted record (generation 0 keeps the keys of older checkpoints).
    A `scope` (`ImportSettings.key_scope`) sets apart another source's rows of the same key."""
    identity = f"{pass_name}\x00{key}" + (f"\x00{generation}" if generation else "")
    identity = f"{scope}\x00{identity}" if scope else identity
    digest = hashlib.sha256(identity.encode()).hexdigest()[:40]
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
    progress = progress or ProgressFactory(quiet=True)
    options = plan_options(settings)
    sources = open_sources(discover_sources(settings.folders, dict(settings.files)), options)
    settings = replace(settings, passes=tuple(opened.file.pass_name for opened in sources))
    in_memory = settings.dry_run and not settings.checkpoint.exists()
    check_writable(_outputs(settings, in_memory))
    with StopRequest(announce=progress.note) as stop, _locked(settings, in_memory):
        checkpoint = Checkpoint(":memory:" if in_memory else settings.checkpoint)
        try:
            if settings.dry_run:
                return await _dry_run(checkpoint, sources, settings, options, started, stop)
            run = checkpoint.begin_run()
            session = _ImportSession(checkpoint, run, settings, PlanOutcome(), started)
            session.fed_back = _errors_files_read(sources)
            try:
                session.plan = _plan_if_needed(checkpoint, run, sources, options, stop.check)
            except RunInterrupted as interrupted:
                return session.finish(interrupted.exit_code, str(interrupted))
            session.tell_warnings(progress)
            if settings.strict and session.plan.invalid:
                invalid = session.plan.invalid
                return session.finish(2, f"{invalid} invalid rows and --strict: nothing was sent.")
            return await session.send_all(progress, stop)
        finally:
            checkpoint.close()


def plan_options(settings: ImportSettings) -> PlanOptions:
    """The few settings that shape the plan."""
    mapping = load_mapping(settings.maps, settings.map_file)
    return PlanOptions(
        mapping, settings.encoding, settings.force, settings.passes, settings.delimiter
    )


def _outputs(settings: ImportSettings, in_memory: bool) -> list[tuple[str, Path]]:
    """Every file this run will write, to check before the first request (a dry run writes
    no results file, and no checkpoint when there is none yet)."""
    outputs = [] if in_memory else [("checkpoint", settings.checkpoint)]
    if not settings.dry_run:  # a dry run leaves both files as the last real run wrote them
        outputs.append(("errors file", settings.errors_file))
        outputs.append(("results file", settings.results_file))
    if settings.report_path is not None:  # written by the caller, from this run's outcome
        outputs.append(("report", settings.report_path))
    return outputs


def _locked(settings: ImportSettings, in_memory: bool) -> AbstractContextManager[object]:
    """One run per checkpoint; a dry run on a checkpoint still in memory needs no lock."""
    return nullcontext() if in_memory else CheckpointLock(settings.checkpoint, "bulk import")


def _plan_if_needed(
    checkpoint: Checkpoint,
    run: Run,
    sources: list[OpenSource],
    options: PlanOptions,
    check: StopCheck,
) -> PlanOutcome:
    """Resuming with unchanged sources skips re-reading them: the plan is already stored, and
    rows that failed without an answer go back in flight to be sent again. Any other resume
    plans again from the source as it is now: rows that left it are not sent."""
    current = fingerprint(sources, options)
    if run.resumed and run.planned and run.fingerprint == current:
        checkpoint.retry_unanswered(run)
        return PlanOutcome(invalid_by_pass={"all": checkpoint.invalid_count(run)})
    if run.resumed:
        checkpoint.leave_run(run)
    plan = plan_import(checkpoint, run, sources, options, check=check)
    checkpoint.mark_planned(run, current)
    return plan


async def _dry_run(
    checkpoint: Checkpoint,
    sources: list[OpenSource],
    settings: ImportSettings,
    options: PlanOptions,
    started: float,
    stop: StopRequest,
) -> ImportOutcome:
    """Plan without keeping the plan, then one `GET /me`: the key and URL fail as the real run
    would (exit 3), and the estimate uses the key's real limit, window and latency."""
    with checkpoint.rolled_back():
        run = checkpoint.begin_run()
        session = _ImportSession(checkpoint, run, settings, PlanOutcome(), started)
        try:
            session.plan = plan_import(
                checkpoint, run, sources, options, record=False, check=stop.check
            )
        except RunInterrupted as interrupted:
            return session.outcome(interrupted.exit_code, str(interrupted))
        plan = session.plan
        exit_code = (2 if settings.strict else 1) if plan.invalid else 0
        outcome = session.outcome(exit_code)
        preview = invalid_preview(checkpoint, run, settings.errors_file)
    try:
        pace = await _key_pace(settings, stop)
    except RequestAbandoned:
        pace = None
    except (*REFUSED, *UNREACHABLE) as failed:
        outcome.exit_code, outcome.error = 3, api_failure(failed, resumable=False)
        return outcome
    if pace is None or stop.is_set():
        outcome.exit_code, outcome.error = stop.exit_code, "Interrupted."
        return outcome
    counts = {name: {**kinds, "invalid": 0} for name, kinds in plan.kinds.items()}
    for name, invalid in plan.invalid_by_pass.items():
        counts.setdefault(name, {})["invalid"] = invalid
    outcome.plan = PlanSummary.from_counts(counts, pace, settings.connection.rate_limit)
    outcome.plan.invalid_preview = preview
    return outcome


def _errors_files_read(sources: list[OpenSource]) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(o.file.path for o in sources if o.file.format == ERRORS_FORMAT))


async def _key_pace(settings: ImportSettings, stop: StopRequest) -> Pace:
    """The dry run's one read request, and what the governor learnt from it."""
    async with open_client(settings.connection, stop) as client:
        await client.me()
        return client.pace()


def api_failure(error: ApiError, *, resumable: bool) -> str:
    """The exit-3 line: a refused key or URL says what to fix (running again would not help);
    an unreachable API says the run can resume."""
    if isinstance(error, REFUSED):
        text = f"The API refused the run: {as_sentence(error)}"
        if isinstance(error, AuthenticationError) and error.remedy is None:
            text += f" {KEY_REMEDY}"
        return text
    text = as_sentence(error)
    if not isinstance(error, ApiUnreachableError):
        text = f"The API is unreachable: {text}"
    return f"{text} {RESUME_HINT}" if resumable else text


class Reachability:
    """Tells a row whose request exhausted its retries apart from an API that is down.

    A row that gets no answer (or only 5xx) through all its attempts fails alone, its request
    kept so that the next run sends exactly it again. The API as a whole is taken to be
    unreachable when `threshold` rows in a row — the concurrency: every worker's latest
    request — exhausted their retries with no answer of any kind in between, and then one
    probe `GET /me` gets no usable answer through its own retries either. Only then does
    `ApiUnreachableError` stop the run (exit 3, resumable).
    """

    def __init__(self, client: PivotalClient, threshold: int) -> None:
        self.client = client
        self.threshold = max(threshold, 1)
        self.streak = 0
        """Rows in a row that exhausted their retries."""
        self._probing = asyncio.Lock()
        self._verdict: ApiUnreachableError | None = None
        """Once a probe went unanswered, every worker stops with the same error."""

    def answered(self) -> None:
        self.streak = 0

    async def exhausted(self, error: ApiError) -> None:
        """Count one more row without an answer; probe the API when it is the threshold's."""
        self.streak += 1
        if self.streak < self.threshold:
            return
        async with self._probing:
            if self._verdict is not None:
                raise self._verdict
            if self.streak < self.threshold:
                return  # another worker's probe got an answer meanwhile
            try:
                await self.client.me()
            except (NoResponseError, ServerError) as probe:
                self._verdict = ApiUnreachableError(
                    f"The API is unreachable: {self.streak} requests in a row got no answer "
                    f"through all their attempts (the last: {as_sentence(error)}) and GET /me "
                    "got none either."
                )
                raise self._verdict from probe
            self.streak = 0


@dataclass
class _ImportSession:
    """One run of an import after planning: sending, then the outcome and its files."""

    checkpoint: Checkpoint
    run: Run
    settings: ImportSettings
    plan: PlanOutcome
    started: float
    client: PivotalClient | None = None
    notes: list[str] = field(default_factory=list)
    """What the user should hear besides the plan's warnings (rows that left the source)."""
    fed_back: tuple[Path, ...] = ()
    """Errors files this run reads as its source."""
    told: bool = False
    """Whether the plan's warnings were printed when planning ended."""

    def tell_warnings(self, progress: ProgressFactory) -> None:
        """Planning's warnings (unknown columns, undocumented enum values, control characters)
        go out before the first request, while the user can still stop the run."""
        for warning in self.plan.warnings:
            progress.note(f"Warning: {warning}")
        self.told = True

    async def send_all(self, progress: ProgressFactory, stop: StopRequest) -> ImportOutcome:
        try:
            async with open_client(self.settings.connection, stop) as self.client:
                me = await self.client.me()  # a bad key or a dead API stops here, before writes
                self.checkpoint.record_workspace(me)  # `bulk undo` refuses another workspace
                reachability = Reachability(self.client, self.settings.connection.concurrency)
                await self._look_up_departed()
                for pass_name in self.settings.passes:
                    if stop.is_set():
                        break
                    await self._send_pass(pass_name, progress, stop, reachability)
        except RequestAbandoned:
            pass  # the stop came while GET /me or a lookup waited: nothing of ours was sent
        except (*REFUSED, *UNREACHABLE) as failed:
            return self.finish(3, api_failure(failed, resumable=True))
        if stop.is_set():
            return self.finish(stop.exit_code, str(RunInterrupted(stop.exit_code)))
        self.checkpoint.finish_run(self.run)
        return self.finish(None)

    async def _look_up_departed(self) -> None:
        """Rows that left the source while their request was in flight are looked up, never
        sent blind: one found is recorded as adopted; either way the user is told."""
        assert self.client is not None
        resolver = ConflictResolver(self.client, self.checkpoint)
        for row in self.checkpoint.unanswered_outside(self.run, self.settings.passes):
            found = await resolver.find_created(row)
            what = f"{row.pass_name} '{row.key}' left the source while its request was in flight"
            if found is not None:
                synced = found.synced
                self.checkpoint.mark_done(
                    row,
                    "adopted",
                    found.id,
                    found.display_id,
                    0,
                    synced,
                    payload_hash(synced),
                    written_at=found.updated_at,
                    seen=found.record,
                )
                self.notes.append(f"{what}: it is in Pivotal as {found.id}, recorded as adopted.")
            elif row.pivotal_id is not None:
                self.notes.append(f"{what}: {row.pivotal_id} is left as it is in Pivotal.")
            else:
                self.notes.append(f"{what}: it is not in Pivotal and was not sent again.")

    async def _send_pass(
        self,
        pass_name: str,
        progress: ProgressFactory,
        stop: StopRequest,
        reachability: Reachability,
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
                reachability=reachability,
                key_scope=self.settings.key_scope,
            )
            async with ticking(bar, self.client.waiting_status):
                await runner.run()

    def finish(self, exit_code: int | None, error: str | None = None) -> ImportOutcome:
        """The outcome, with the errors and results files written from the whole checkpoint.

        An errors file that is this run's own source is rewritten only once the run finished
        (`exit_code` None): a resume must read it as it was, or the fixed rows it still has to
        send would leave its source."""
        outcome = self.outcome(exit_code, error)
        outcome.fed_back = self.fed_back
        errors_file = self.settings.errors_file
        if exit_code is not None and _same_file(errors_file, self.fed_back):
            outcome.errors_file = errors_file
            outcome.warnings.append(
                f"{errors_file} is this run's source: it is rewritten when the run finishes."
            )
        else:
            outcome.errors_file = write_errors_file(self.checkpoint, errors_file)
        outcome.results_file = write_results_file(self.checkpoint, self.settings.results_file)
        return outcome

    def outcome(self, exit_code: int | None, error: str | None = None) -> ImportOutcome:
        """`exit_code` None means: 0 when every row is done, else 1."""
        stats = self.client.stats if self.client is not None else None
        summary = ImportSummary.from_counts(
            self.checkpoint.action_counts(self.run),
            self.settings.passes,
            stats,
            time.monotonic() - self.started,
            self.checkpoint.not_in_source_counts(self.run),
        )
        if exit_code is None:
            exit_code = 1 if summary.has_problems else 0
        told, untold = (self.plan.warnings, []) if self.told else ([], self.plan.warnings)
        warnings = [*untold, *self.notes]
        return ImportOutcome(summary, exit_code, warnings, error, told_warnings=told)


class PassRunner:
    """Sends one pass's pending rows with `concurrency` workers, in source order."""

    def __init__(
        self,
        client: PivotalClient,
        checkpoint: Checkpoint,
        run: Run,
        pass_name: str,
        bar: PassProgress,
        stop: StopRequest,
        *,
        concurrency: int,
        force: bool,
        reachability: Reachability | None = None,
        key_scope: str = "",
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
        self.reachability = reachability or Reachability(client, concurrency)
        self.key_scope = key_scope
        self._parent_ids: dict[str, str] = {}
        """Customers' Pivotal ids, read once each: the customers pass is over by now."""
        self.commits: GroupCommit | None = None
        """While the pass runs, the workers' checkpoint writes share commits."""

    async def run(self) -> None:
        """Workers share one iterator over the checkpoint's pending rows (source order)."""
        rows = self.checkpoint.rows_to_send(self.pass_name, self.run_)
        with self.checkpoint.grouped_commits() as self.commits:
            try:
                await run_workers(self.concurrency, lambda: self._worker(rows))
            finally:
                self.commits = None

    async def _worker(self, rows: Iterator[RowState]) -> None:
        while not self.stop.is_set() and (row := next(rows, None)) is not None:
            try:
                await self.sync(row)
            except RequestAbandoned:
                return  # a stop came while the row's request waited: it is not finished
            state = self.checkpoint.row_state(self.pass_name, row.key)
            self.bar.advance(failed=state == "failed", skipped=state == "skipped")

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
        if row.request_method == "POST" and await self._adopted_before_sending(row):
            return  # its key may have expired since: found under its customer, not sent again
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
                if await self._adopted_before_sending(row, parent_id):
                    return  # a customer this checkpoint did not create: its onboarding exists
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
        if row.origin != "created":  # an undo puts back what an adopted record held
            before = {name: synced.get(name) for name in body}
            self.checkpoint.remember_before(row, before, row.written_at)
        path = f"/{self.pass_name}/{row.pivotal_id}"  # passes are named after collections
        await self._send(row, "PATCH", path, encode_body(body), row.payload, "updated")

    async def _adopted_before_sending(self, row: RowState, customer: str | None = None) -> bool:
        """An onboarding that may be in Pivotal already is looked up under its customer first
        (`bulk.importing.matching`); True when that settled the row. A lookup without an
        answer fails the row alone, like a request without one, and a refused one (a customer
        deleted since) with the API's error; either keeps a request in flight for next time."""
        try:
            return await self.conflicts.adopt_before_sending(row, customer, self._update)
        except AuthenticationError:
            raise
        except (NoResponseError, ServerError) as error:
            code = error.code if isinstance(error, ServerError) else "no_response"
            message = _no_answer(error)
            self.checkpoint.mark_failed(row, "failed", code, message, 0, outcome_known=False)
            await self.reachability.exhausted(error)
        except ApiStatusError as error:
            self.reachability.answered()
            code, message = error.code, error.api_message
            self.checkpoint.mark_failed(row, "failed", code, message, 0, outcome_known=False)
        return True

    def _parent_id(self, row: RowState) -> str | None:
        """The customer's Pivotal id, or None after marking the row skipped."""
        if row.customer_ref is not None:
            return row.customer_ref
        assert row.customer_key is not None
        known = self._parent_ids.get(row.customer_key)
        if known is not None:
            return known
        parent = self.checkpoint.parent(row.customer_key)
        if parent.state == "done" and parent.pivotal_id is not None:
            self._parent_ids[row.customer_key] = parent.pivotal_id
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
        """Mark the row in flight with the body's exact bytes, then send exactly them.

        A request that exhausts its retries without an answer fails its row alone, the
        request kept for the next run (`Reachability` decides whether the API is down).
        """
        self.checkpoint.mark_in_flight(row, method, path, body, target)
        if self.commits is not None:
            await self.commits.durable()  # in flight, committed, before the request leaves
        key = (
            idempotency_key(self.pass_name, row.key, row.generation, self.key_scope)
            if method == "POST"
            else None
        )
        try:
            response = await self.client.request(method, path, body=body, idempotency_key=key)
        except RequestAbandoned as abandoned:
            if not abandoned.sent and row.request_method is None:
                self.checkpoint.release_unsent(row)  # it never left: nothing to resolve
            raise
        except AuthenticationError:
            raise  # the run stops; the request stays recorded and is re-sent next time
        except (NoResponseError, ServerError) as error:
            code = error.code if isinstance(error, ServerError) else "no_response"
            self.checkpoint.mark_failed(
                row, "failed", code, _no_answer(error), error.attempts, outcome_known=False
            )
            await self.reachability.exhausted(error)
        except ApiStatusError as error:
            self.reachability.answered()
            # only a create can collide with a record we already made
            if method == "POST" and await self._adopted(row, error, path, target):
                return
            self.checkpoint.mark_failed(
                row, "failed", error.code, error.api_message, error.attempts
            )
        else:
            self.reachability.answered()
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
                row.payload_hash if target is row.payload else payload_hash(target),
                written_at=_text_or_none(response.body.get("updated_at")),
                seen=response.body if method == "PATCH" and row.origin != "created" else None,
            )

    async def _adopted(
        self, row: RowState, error: ApiStatusError, path: str, target: dict[str, Any]
    ) -> bool:
        """Adopt the record a refused create collided with. A lookup that gets no answer
        fails the row alone (the 409 is known: nothing of ours was created; the next run's
        create meets the same conflict and looks again)."""
        try:
            return await self.conflicts.adopt(row, error, path, target, self._update)
        except (NoResponseError, ServerError) as lookup:
            error.api_message += f"; looking up the existing record got no answer: {lookup}"
            return False


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _same_file(path: Path, others: tuple[Path, ...]) -> bool:
    return any(path.resolve() == other.resolve() for other in others)


def _no_answer(error: ApiError) -> str:
    return f"{error} (no usable answer after {error.attempts} attempts; run again to retry)"
