"""`bulk export`: a whole workspace to Parquet (or CSV), complete, resumable, in bounded memory.

Customers come from walking the customer list, contacts from walking each customer's contacts
(the API has no global contact list), onboardings from walking the onboarding list; every walk
recovers the rows the API's cursor skips (`bulk.exporting.walker`). Rows go to part files of at most
`part_rows` rows — written under a temporary name and renamed — and the walk's position is saved
in the checkpoint right after each part, so a killed export continues from the last part and
never holds more than one part in memory. At the end the parts are merged into one file per type
and `manifest.json` is written.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from bulk._version import __version__
from bulk.api.client import PivotalClient
from bulk.api.connection import open_client
from bulk.checkpoint import Checkpoint
from bulk.errors import (
    RESUME_HINT,
    ApiStatusError,
    AuthenticationError,
    NoResponseError,
    UsageError,
    as_sentence,
)
from bulk.exporting.tables import FILE_NAMES, frame, merge_parts, write_part
from bulk.exporting.walker import Split, WalkState, WalkWarnings, walk
from bulk.interrupts import stop_on_interrupt
from bulk.progress import PassProgress, ProgressFactory
from bulk.schema import CUSTOMER_STATUSES, ONBOARDING_PHASES, ONBOARDING_STATES, now_timestamp
from bulk.settings import ExportSettings

CONTACT_BATCH = 64
"""Customers whose contacts are fetched together (at most `concurrency` requests at a time)."""
CUSTOMER_SPLITS = (Split("status", CUSTOMER_STATUSES),)
ONBOARDING_SPLITS = (Split("state", ONBOARDING_STATES), Split("phase", ONBOARDING_PHASES))
OBJECTS = ("customer", "contact", "onboarding")


@dataclass
class ExportOutcome:
    counts: dict[str, int]
    exit_code: int
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    workspace: str | None = None

    def render(self) -> str:
        lines = [f"{FILE_NAMES[name]:<12}{count:>10}" for name, count in self.counts.items()]
        lines.append(
            f"requests {self.requests}, retries {self.retries}, rate-limited "
            f"{self.rate_limited}, elapsed {self.elapsed_s:.1f} s"
        )
        return "\n".join(lines)

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
    """Export the workspace, continuing a killed export from its checkpoint."""
    started = time.monotonic()
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = Checkpoint(settings.checkpoint_file)
    try:
        return await _export(settings, checkpoint, progress or ProgressFactory(quiet=True), started)
    finally:
        checkpoint.close()


async def _export(
    settings: ExportSettings, checkpoint: Checkpoint, progress: ProgressFactory, started: float
) -> ExportOutcome:
    if checkpoint.load_state("phase") == "done":
        if settings.reuse_finished:
            return _finished_outcome(settings, started)
        checkpoint.clear_state()
    _check_format(checkpoint, settings)
    stop = asyncio.Event()
    client: PivotalClient | None = None
    outcome: ExportOutcome
    with stop_on_interrupt(stop):
        try:
            async with open_client(settings.connection) as client:
                run = _ExportRun(settings, checkpoint, client, progress, stop)
                await run.all_phases()
                if stop.is_set():
                    outcome = _partial(checkpoint, 130, f"Interrupted. {RESUME_HINT}")
                else:
                    outcome = _finished_outcome(settings, started)
        except (AuthenticationError, NoResponseError) as refused:
            outcome = _partial(
                checkpoint, 3, f"The API refused the export: {as_sentence(refused)} {RESUME_HINT}"
            )
    if client is not None:
        outcome.requests, outcome.retries = client.stats.requests, client.stats.retries
        outcome.rate_limited = client.stats.rate_limited
    outcome.elapsed_s = time.monotonic() - started
    return outcome


def _check_format(checkpoint: Checkpoint, settings: ExportSettings) -> None:
    saved = checkpoint.load_state("format")
    if saved is None:
        checkpoint.save_state({"format": settings.file_format})
    elif saved != settings.file_format:
        raise UsageError(
            f"This export was started as {saved}, not {settings.file_format}.",
            f"Run it again with --format {saved}, or use another output folder.",
        )


class _ExportRun:
    """One export's phases: customers, contacts, onboardings, then the merge."""

    def __init__(
        self,
        settings: ExportSettings,
        checkpoint: Checkpoint,
        client: PivotalClient,
        progress: ProgressFactory,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.checkpoint = checkpoint
        self.client = client
        self.progress = progress
        self.stop = stop
        self.parts_dir = settings.out_dir / ".parts"
        self.parts_dir.mkdir(exist_ok=True)
        self.warnings = WalkWarnings(list(checkpoint.load_state("warnings") or []))

    async def all_phases(self) -> None:
        if self.checkpoint.load_state("workspace") is None:
            me = await self.client.me()
            organization = me.get("organization") or {}
            self.checkpoint.save_state(
                {"workspace": organization.get("slug"), "organization_id": organization.get("id")}
            )
        await self._walk_list("customer", "/customers", CUSTOMER_SPLITS)
        customer_split = Split("customer_id", self._column("customer", "id"))
        await self._walk_list("onboarding", "/onboardings", (*ONBOARDING_SPLITS, customer_split))
        await self._late_customers()
        await self._contacts()
        if not self.stop.is_set():
            self._merge()

    async def _walk_list(self, object_name: str, path: str, splits: Sequence[Split]) -> None:
        state = WalkState.from_json(self.checkpoint.load_state(f"{object_name}.walk"))
        if state.finished or self.stop.is_set():
            return
        buffer: list[dict[str, Any]] = []
        label = FILE_NAMES[object_name]
        with self._bar(object_name) as bar:
            async for rows in walk(
                self._fetch(path), state, splits=splits, warnings=self.warnings, label=label
            ):
                buffer += rows
                bar.advance(len(rows))
                if len(buffer) >= self.settings.part_rows or state.finished or self.stop.is_set():
                    self._write_part(object_name, buffer, {f"{object_name}.walk": state.to_json()})
                    buffer = []
                if self.stop.is_set():
                    return

    async def _late_customers(self) -> None:
        """Customers created after the customer walk whose onboardings the later walk met:
        fetch them, so every exported onboarding has its customer in the export."""
        if self.checkpoint.load_state("customer.late_done") or self.stop.is_set():
            return
        exported = set(self._column("customer", "id"))
        missing = sorted(set(self._column("onboarding", "customer_external_id")) - exported)
        found = await asyncio.gather(*(self._customer(customer_id) for customer_id in missing))
        rows = [customer for customer in found if customer is not None]
        self._write_part("customer", rows, {"customer.late_done": True})

    async def _customer(self, customer_id: str) -> dict[str, Any] | None:
        try:
            return (await self.client.request("GET", f"/customers/{customer_id}")).body
        except ApiStatusError as error:
            if error.status != 404:
                raise
            return None  # deleted meanwhile: its onboardings are dropped at the merge

    async def _contacts(self) -> None:
        done = int(self.checkpoint.load_state("contact.customers_done") or 0)
        if self.checkpoint.load_state("contact.finished") or self.stop.is_set():
            return
        customer_ids = self._column("customer", "id")
        buffer: list[dict[str, Any]] = []
        with self._bar("contact", total=len(customer_ids), settled=done) as bar:
            for start in range(done, len(customer_ids), CONTACT_BATCH):
                batch = customer_ids[start : start + CONTACT_BATCH]
                for contacts in await asyncio.gather(*(self._contacts_of(c) for c in batch)):
                    buffer += contacts
                bar.advance(len(batch))
                done = start + len(batch)
                last = done >= len(customer_ids)
                if len(buffer) >= self.settings.part_rows or last or self.stop.is_set():
                    self._write_part(
                        "contact",
                        buffer,
                        {"contact.customers_done": done, "contact.finished": last},
                    )
                    buffer = []
                if self.stop.is_set():
                    return
            if not customer_ids:
                self.checkpoint.save_state({"contact.finished": True})

    async def _contacts_of(self, customer_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        try:
            async for page in walk(
                self._fetch(f"/customers/{customer_id}/contacts"),
                WalkState(),
                warnings=self.warnings,
                label=f"contacts of {customer_id}",
            ):
                rows += page
        except ApiStatusError as error:
            if error.status != 404:
                raise
            return []  # deleted since it was exported: its contacts are hidden too
        return rows

    def _column(self, object_name: str, column: str) -> list[str]:
        """One column of the parts written so far, in order (ids are small: fine in memory)."""
        parts = self._parts(object_name)
        if not parts:
            return []
        scan = (
            pl.scan_csv(parts, infer_schema=False)
            if self.settings.file_format == "csv"
            else pl.scan_parquet(parts)
        )
        values = scan.select(column).collect()[column].to_list()
        return [str(value) for value in values if value is not None]

    def _fetch(self, path: str) -> Any:
        async def fetch(params: Mapping[str, str]) -> Mapping[str, Any]:
            response = await self.client.request("GET", path, params=params)
            return response.body

        return fetch

    def _write_part(
        self, object_name: str, rows: list[dict[str, Any]], position: dict[str, Any]
    ) -> None:
        """Write the rows as the next part, then save the position that follows it."""
        number = int(self.checkpoint.load_state(f"{object_name}.parts") or 0)
        written = int(self.checkpoint.load_state(f"{object_name}.rows") or 0)
        if rows:
            number += 1
            part = self.parts_dir / f"{FILE_NAMES[object_name]}-{number:06d}.{self._extension}"
            write_part(
                frame(object_name, rows, self.settings.file_format), part, self.settings.file_format
            )
        self.checkpoint.save_state(
            {
                **position,
                f"{object_name}.parts": number,
                f"{object_name}.rows": written + len(rows),
                "warnings": self.warnings.messages,
            }
        )

    def _parts(self, object_name: str) -> list[Path]:
        count = int(self.checkpoint.load_state(f"{object_name}.parts") or 0)
        return [
            self.parts_dir / f"{FILE_NAMES[object_name]}-{n:06d}.{self._extension}"
            for n in range(1, count + 1)
        ]

    def _merge(self) -> None:
        counts = {}
        customers = self.settings.out_dir / f"customers.{self._extension}"
        for object_name in OBJECTS:
            destination = self.settings.out_dir / f"{FILE_NAMES[object_name]}.{self._extension}"
            counts[object_name] = merge_parts(
                object_name,
                self._parts(object_name),
                destination,
                self.settings.file_format,
                parents=None if object_name == "customer" else customers,
            )
        manifest = {
            "workspace": self.checkpoint.load_state("workspace"),
            "organization_id": self.checkpoint.load_state("organization_id"),
            "exported_at": now_timestamp(),
            "format": self.settings.file_format,
            "counts": {FILE_NAMES[name]: count for name, count in counts.items()},
            "files": {
                FILE_NAMES[name]: f"{FILE_NAMES[name]}.{self._extension}" for name in OBJECTS
            },
            "warnings": self.warnings.messages,
            "tool": {"name": "bulk", "version": __version__},
        }
        (self.settings.out_dir / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        self.checkpoint.save_state({"phase": "done"})
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def _bar(self, object_name: str, total: int | None = None, settled: int = 0) -> PassProgress:
        """Rows so far for a list walk; customers walked (of all) for contacts."""
        if total is None:
            settled = int(self.checkpoint.load_state(f"{object_name}.rows") or 0)
            return self.progress.for_pass(FILE_NAMES[object_name], None, settled)
        return self.progress.for_pass("contacts", total, settled, unit="customer")

    @property
    def _extension(self) -> str:
        return "csv" if self.settings.file_format == "csv" else "parquet"


def read_manifest(out_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out_dir / "manifest.json").read_text("utf-8"))
    return document


def _finished_outcome(settings: ExportSettings, started: float) -> ExportOutcome:
    manifest = read_manifest(settings.out_dir)
    counts = {name: int(manifest["counts"][FILE_NAMES[name]]) for name in OBJECTS}
    warnings = list(manifest.get("warnings", []))
    return ExportOutcome(
        counts,
        1 if warnings else 0,
        warnings=warnings,
        workspace=manifest.get("workspace"),
        elapsed_s=time.monotonic() - started,
    )


def _partial(checkpoint: Checkpoint, exit_code: int, error: str) -> ExportOutcome:
    counts = {name: int(checkpoint.load_state(f"{name}.rows") or 0) for name in OBJECTS}
    warnings = list(checkpoint.load_state("warnings") or [])
    return ExportOutcome(
        counts,
        exit_code,
        warnings=warnings,
        error=error,
        workspace=checkpoint.load_state("workspace"),
    )
