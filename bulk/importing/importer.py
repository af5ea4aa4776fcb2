"""`bulk import`: validate every row, then three passes — customers, contacts, onboardings.

Exactly once: each pass is sent by `bulk.importing.sending`, which records every request in
flight, committed, before it leaves, under an idempotency key derived from the row's identity.

A run never surprises its user: before anything is sent the sources' headers are read, every
output path is checked writable and the checkpoint is locked against a second run; `--strict`
sends nothing if any row is invalid; one `StopRequest` spans planning and sending, so a signal
stops either at once with the summary and a resumable checkpoint; a row whose request exhausts
its retries fails alone (`sending.Reachability` tells when the API as a whole is unreachable).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from bulk.api.client import PivotalClient
from bulk.api.connection import open_client
from bulk.api.estimate import Pace
from bulk.checkpoint import Checkpoint, Run
from bulk.errors import (
    RESUME_HINT,
    ApiError,
    ApiUnreachableError,
    AuthenticationError,
    NoResponseError,
    NotTheApiError,
    RequestAbandoned,
    RunInterrupted,
    ServerError,
    as_sentence,
)
from bulk.importing.conflicts import ConflictResolver
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
from bulk.importing.sending import PassRunner, Reachability
from bulk.importing.sources import discover_sources
from bulk.interrupts import StopRequest
from bulk.lock import CheckpointLock
from bulk.outcome import RunOutcome
from bulk.outputs import check_writable
from bulk.progress import ProgressFactory, ticking
from bulk.settings import ImportSettings

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


def _same_file(path: Path, others: tuple[Path, ...]) -> bool:
    return any(path.resolve() == other.resolve() for other in others)
