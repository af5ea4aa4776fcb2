"""`bulk export`: a whole workspace to Parquet (or CSV), complete, resumable, in bounded memory.

Customers come from walking the customer list, contacts from walking each customer's contacts
(the API has no global contact list), onboardings from walking the onboarding list; every walk
recovers the rows the API's cursor skips (`bulk.exporting.walker`). Rows go to part files of at most
`part_rows` rows — written under a temporary name and renamed — and the walk's position is saved
in the checkpoint right after each part, so a killed export continues from the last part and
never holds more than one part in memory. At the end the parts are merged into one file per type
and `manifest.json` is written. Fields `bulk.schema` does not list, and the customers' export keys,
are settled at the merge, when every part is known (`bulk.exporting.tables`): a part needs no
state beyond its own file, so a resumed export needs none either.

Before anything is sent, the export takes its checkpoint's lock (one run per checkpoint) and
refuses a folder holding files it did not write (`bulk.exporting.folder`). Ctrl-C or SIGTERM
(`StopRequest`) stops it between requests: those waiting for a rate-limit slot or a retry are
dropped, the parts written so far are kept, and the next run continues from them.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Awaitable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bulk._version import __version__
from bulk.api.client import PivotalClient
from bulk.api.connection import open_client
from bulk.checkpoint import Checkpoint
from bulk.display import format_table
from bulk.errors import (
    RESUME_HINT,
    ApiStatusError,
    AuthenticationError,
    NoResponseError,
    RequestAbandoned,
    UsageError,
    as_sentence,
)
from bulk.exporting.folder import MANIFEST, PARTS_DIR, refuse_foreign_files
from bulk.exporting.state import PARTS_LAYOUT, ExportState
from bulk.exporting.tables import frame, merge_parts, read_column, write_part
from bulk.exporting.walker import CUSTOMER_SPLITS, Split, WalkState, WalkWarnings, walk
from bulk.interrupts import StopRequest
from bulk.lock import CheckpointLock
from bulk.progress import PassProgress, ProgressFactory
from bulk.schema import (
    CONTACT,
    CUSTOMER,
    OBJECT_SCHEMAS,
    ONBOARDING,
    ONBOARDING_PHASES,
    ONBOARDING_STATES,
    SCHEMAS,
    ObjectSchema,
    now_timestamp,
)
from bulk.settings import ExportSettings

T = TypeVar("T")
CONTACT_BATCH = 64
"""Customers whose contacts are fetched together (at most `concurrency` requests at a time)."""
ONBOARDING_SPLITS = (Split("state", ONBOARDING_STATES), Split("phase", ONBOARDING_PHASES))


@dataclass
class ExportOutcome:
    counts: dict[str, int]
    """Rows exported per object type (`ObjectSchema.object`)."""
    exit_code: int
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    workspace: str | None = None

    def render(self) -> str:
        rows = [(SCHEMAS[name].collection, str(count)) for name, count in self.counts.items()]
        totals = (
            f"requests {self.requests}, retries {self.retries}, rate-limited "
            f"{self.rate_limited}, elapsed {self.elapsed_s:.1f} s"
        )
        return format_table(rows[0], rows[1:]) + "\n" + totals if rows else totals

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "elapsed_s": round(self.elapsed_s, 3),
            "warnings": self.warnings,
            "exit_code": self.exit_code,
            "workspace": self.workspace,
        }


async def run_export(
    settings: ExportSettings, progress: ProgressFactory | None = None
) -> ExportOutcome:
    """Export the workspace, continuing a killed export from its checkpoint.

    Refused at once, nothing sent: a checkpoint another live run holds (`CheckpointBusyError`),
    an `out_dir` holding files the export did not write unless `settings.overwrite`
    (`OutputError`).
    """
    started = time.monotonic()
    with CheckpointLock(settings.checkpoint_file, "bulk export"):
        refuse_foreign_files(settings)
        settings.out_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = Checkpoint(settings.checkpoint_file)
        try:
            factory = progress or ProgressFactory(quiet=True)
            return await _export(settings, checkpoint, factory, started)
        finally:
            checkpoint.close()


async def _export(
    settings: ExportSettings, checkpoint: Checkpoint, progress: ProgressFactory, started: float
) -> ExportOutcome:
    state = ExportState.load(checkpoint) or ExportState()
    if state.finished:
        if settings.reuse_finished:
            return _finished_outcome(settings, started)
        state = ExportState()
    elif state.parts_layout != PARTS_LAYOUT:  # an older bulk's parts: start again without them
        shutil.rmtree(settings.out_dir / PARTS_DIR, ignore_errors=True)
        state = ExportState()
    _check_format(checkpoint, state, settings)
    client: PivotalClient | None = None
    outcome: ExportOutcome
    with StopRequest() as stop:
        try:
            async with open_client(settings.connection, stop) as client:
                run = _ExportRun(settings, checkpoint, state, client, progress, stop)
                with suppress(RequestAbandoned):  # a stop dropped the requests still waiting
                    await run.all_phases()
                if state.finished:
                    outcome = _finished_outcome(settings, started)
                else:
                    outcome = _partial(checkpoint, stop.exit_code, f"Interrupted. {RESUME_HINT}")
        except (AuthenticationError, NoResponseError) as refused:
            outcome = _partial(
                checkpoint, 3, f"The API refused the export: {as_sentence(refused)} {RESUME_HINT}"
            )
    if client is not None:
        outcome.requests, outcome.retries = client.stats.requests, client.stats.retries
        outcome.rate_limited = client.stats.rate_limited
    outcome.elapsed_s = time.monotonic() - started
    return outcome


def _check_format(checkpoint: Checkpoint, state: ExportState, settings: ExportSettings) -> None:
    if state.file_format is None:
        state.file_format = settings.file_format
        state.save(checkpoint)
    elif state.file_format != settings.file_format:
        saved = state.file_format
        raise UsageError(
            f"This export was started as {saved}, not {settings.file_format}.",
            f"Run it again with --format {saved}, or use another output folder.",
        )


class _ExportRun:
    """One export's phases: customers, contacts, onboardings, then the merge.

    `state` is what the checkpoint holds plus the position reached since; every save writes
    it whole, right after the part file that position follows.
    """

    def __init__(
        self,
        settings: ExportSettings,
        checkpoint: Checkpoint,
        state: ExportState,
        client: PivotalClient,
        progress: ProgressFactory,
        stop: StopRequest,
    ) -> None:
        self.settings = settings
        self.checkpoint = checkpoint
        self.state = state
        self.client = client
        self.progress = progress
        self.stop = stop
        self.parts_dir = settings.out_dir / PARTS_DIR
        self.parts_dir.mkdir(exist_ok=True)
        self.warnings = WalkWarnings(list(state.warnings))

    async def all_phases(self) -> None:
        if self.state.workspace is None:
            me = await self.client.me()
            organization = me.get("organization") or {}
            self.state.workspace = organization.get("slug")
            self.state.organization_id = organization.get("id")
            self.state.save(self.checkpoint)
        await self._walk_list(CUSTOMER, CUSTOMER_SPLITS)
        customer_split = Split("customer_id", self._column(CUSTOMER, "id"))
        await self._walk_list(ONBOARDING, (*ONBOARDING_SPLITS, customer_split))
        await self._late_customers()
        await self._contacts()
        if not self.stop.is_set():
            self._merge()

    async def _walk_list(self, schema: ObjectSchema, splits: Sequence[Split]) -> None:
        progress = self.state.of(schema)
        position = progress.walk.copy()
        if position.finished or self.stop.is_set():
            return
        buffer: list[dict[str, Any]] = []
        pages = walk(
            self.client.page_fetcher(f"/{schema.collection}"),
            position,
            splits=splits,
            warnings=self.warnings,
            label=schema.collection,
        )
        with self._bar(schema) as bar:
            try:
                async for rows in pages:
                    buffer += rows
                    bar.advance(len(rows))
                    if (
                        len(buffer) >= self.settings.part_rows
                        or position.finished
                        or self.stop.is_set()
                    ):
                        progress.walk = position.copy()
                        self._write_part(schema, buffer)
                        buffer = []
                    if self.stop.is_set():
                        return
            except RequestAbandoned:
                # `position` follows the last page read: keep what was read up to it
                progress.walk = position.copy()
                self._write_part(schema, buffer)
                raise

    async def _late_customers(self) -> None:
        """Customers created after the customer walk whose onboardings the later walk met:
        fetch them, so every exported onboarding has its customer in the export."""
        if self.state.late_customers_done or self.stop.is_set():
            return
        exported = set(self._column(CUSTOMER, "id"))
        missing = sorted(set(self._column(ONBOARDING, "customer_id")) - exported)
        found, error = await _leading_results(self._customer(c) for c in missing)
        if error is not None:
            raise error
        self.state.late_customers_done = True
        self._write_part(CUSTOMER, [customer for customer in found if customer is not None])

    async def _customer(self, customer_id: str) -> dict[str, Any] | None:
        try:
            return (await self.client.request("GET", f"/{CUSTOMER.collection}/{customer_id}")).body
        except ApiStatusError as error:
            if error.status != 404:
                raise
            return None  # deleted meanwhile: its onboardings are dropped at the merge

    async def _contacts(self) -> None:
        done = self.state.contacts_walked
        if self.state.contacts_finished or self.stop.is_set():
            return
        customer_ids = self._column(CUSTOMER, "id")
        buffer: list[dict[str, Any]] = []
        with self._bar(CONTACT, total=len(customer_ids), settled=done) as bar:
            for start in range(done, len(customer_ids), CONTACT_BATCH):
                batch = customer_ids[start : start + CONTACT_BATCH]
                walked, error = await _leading_results(self._contacts_of(c) for c in batch)
                for contacts in walked:
                    buffer += contacts
                bar.advance(len(walked))
                done = start + len(walked)
                last = done >= len(customer_ids)
                ending = error is not None or self.stop.is_set()
                if len(buffer) >= self.settings.part_rows or last or ending:
                    # the customers walked before the first that was not: kept in order
                    self.state.contacts_walked, self.state.contacts_finished = done, last
                    self._write_part(CONTACT, buffer)
                    buffer = []
                if error is not None:
                    raise error
                if self.stop.is_set():
                    return
            if not customer_ids:
                self.state.contacts_finished = True
                self.state.save(self.checkpoint)

    async def _contacts_of(self, customer_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        try:
            async for page in walk(
                self.client.page_fetcher(
                    f"/{CUSTOMER.collection}/{customer_id}/{CONTACT.collection}"
                ),
                WalkState(),
                warnings=self.warnings,
                label=f"{CONTACT.collection} of {customer_id}",
            ):
                rows += page
        except ApiStatusError as error:
            if error.status != 404:
                raise
            return []  # deleted since it was exported: its contacts are hidden too
        return rows

    def _column(self, schema: ObjectSchema, column: str) -> list[str]:
        """One column of the parts written so far, in order (ids are small: fine in memory)."""
        return read_column(self._parts(schema), column, self.settings.file_format)

    def _write_part(self, schema: ObjectSchema, rows: list[dict[str, Any]]) -> None:
        """Write the rows as the next part, then save the state, whose position follows it."""
        progress = self.state.of(schema)
        if rows:
            progress.parts += 1
            write_part(
                frame(schema.object, rows, self.settings.file_format),
                self._part(schema, progress.parts),
                self.settings.file_format,
            )
        progress.rows += len(rows)
        self.state.warnings = list(self.warnings.messages)
        self.state.save(self.checkpoint)

    def _part(self, schema: ObjectSchema, number: int) -> Path:
        return self.parts_dir / f"{schema.collection}-{number:06d}.{self._extension}"

    def _parts(self, schema: ObjectSchema) -> list[Path]:
        return [self._part(schema, n) for n in range(1, self.state.of(schema).parts + 1)]

    def _merge(self) -> None:
        self._write_manifest({})  # names the files the merge is about to write as the export's
        counts = {}
        customers = self._output(CUSTOMER)
        for schema in OBJECT_SCHEMAS:
            counts[schema.collection] = merge_parts(
                schema.object,
                self._parts(schema),
                self._output(schema),
                self.settings.file_format,
                parents=None if schema is CUSTOMER else customers,
            )
        self._write_manifest(counts)
        self.state.finished = True
        self.state.save(self.checkpoint)
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def _write_manifest(self, counts: dict[str, int]) -> None:
        """The manifest; with no `counts` (before the merge) it only claims the files."""
        manifest = {
            "workspace": self.state.workspace,
            "organization_id": self.state.organization_id,
            "exported_at": now_timestamp() if counts else None,
            "format": self.settings.file_format,
            "counts": counts or None,
            "files": {schema.collection: self._output(schema).name for schema in OBJECT_SCHEMAS},
            "warnings": self.warnings.messages,
            "tool": {"name": "bulk", "version": __version__},
        }
        (self.settings.out_dir / MANIFEST).write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    def _output(self, schema: ObjectSchema) -> Path:
        return self.settings.out_dir / f"{schema.collection}.{self._extension}"

    def _bar(
        self, schema: ObjectSchema, total: int | None = None, settled: int = 0
    ) -> PassProgress:
        """Rows so far for a list walk; customers walked (of all) for contacts."""
        if total is None:
            return self.progress.for_pass(schema.collection, None, self.state.of(schema).rows)
        return self.progress.for_pass(schema.collection, total, settled, unit=CUSTOMER.object)

    @property
    def _extension(self) -> str:
        return "csv" if self.settings.file_format == "csv" else "parquet"


def read_manifest(out_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out_dir / MANIFEST).read_text("utf-8"))
    return document


async def _leading_results(
    coroutines: Iterable[Awaitable[T]],
) -> tuple[list[T], BaseException | None]:
    """Once every one has ended: the results before the first that failed, and its error.

    Unlike a bare `gather`, no request is left running after an error (a stop makes those
    waiting raise `RequestAbandoned` at once; those in flight finish, bounded by the timeout),
    and what succeeded before the failure can be kept.
    """
    leading: list[T] = []
    for result in await asyncio.gather(*coroutines, return_exceptions=True):
        if isinstance(result, BaseException):
            return leading, result
        leading.append(result)
    return leading, None


def _finished_outcome(settings: ExportSettings, started: float) -> ExportOutcome:
    manifest = read_manifest(settings.out_dir)
    counts = {
        schema.object: int(manifest["counts"][schema.collection]) for schema in OBJECT_SCHEMAS
    }
    warnings = list(manifest.get("warnings", []))
    return ExportOutcome(
        counts,
        1 if warnings else 0,
        warnings=warnings,
        workspace=manifest.get("workspace"),
        elapsed_s=time.monotonic() - started,
    )


def _partial(checkpoint: Checkpoint, exit_code: int, error: str) -> ExportOutcome:
    """What the checkpoint says was exported before the run stopped."""
    state = ExportState.load(checkpoint) or ExportState()
    return ExportOutcome(
        {schema.object: state.of(schema).rows for schema in OBJECT_SCHEMAS},
        exit_code,
        warnings=list(state.warnings),
        error=error,
        workspace=state.workspace,
    )
