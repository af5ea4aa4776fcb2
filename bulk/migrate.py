"""`bulk migrate`: export one workspace into a work folder, then import it into another.

Ids are remapped by the import itself: the export keys each customer by its own
`metadata.external_id` where that is unique in the source (else by its source `id`), children by
their source `id` and their customer's key (`customer_external_id`, which the import prefers to
the source workspace's `customer_id`), and the import checkpoint maps every key to the id the
target gave it. So customers keep their `metadata.external_id` in the target, and the admin's own
spreadsheet still matches it; one that had none gets its source `id` there (the import writes
every customer's key into its metadata). The import's idempotency keys include the source
workspace (`ImportSettings.key_scope`): the admin importing their spreadsheet into the target
afterwards sends the same row keys, and must adopt the records, not have its creates answered as
replays of the migration's (recorded `created`, their onboardings sent again, and undone by a
`bulk undo` of that import). Both halves keep their own checkpoint in the work
folder, so re-running the same command resumes whichever half was interrupted. It ends with a
reconciliation of what the source had against what reached the target.

One migration per work folder: the whole command holds a lock on the folder (besides the
export's and the import's locks on their own checkpoints), taken before the first request, so
a second `bulk migrate` on the same folder is refused at once, naming the holder.
"""

from __future__ import annotations

import time
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import Any

from bulk.api.connection import open_client
from bulk.display import format_table
from bulk.errors import CheckpointBusyError, UsageError
from bulk.exporting.exporter import ExportOutcome, read_manifest, run_export
from bulk.exporting.tables import FILE_NAMES
from bulk.importing.importer import ImportOutcome, run_import
from bulk.importing.reports import PassCounts
from bulk.lock import CheckpointLock
from bulk.progress import ProgressFactory
from bulk.settings import ConnectionSettings, ExportSettings, ImportSettings, MigrateSettings


@dataclass(frozen=True)
class Reconciliation:
    """One object type: how many the source had, how many are in the target, and the gaps."""

    object_type: str
    source: int
    target: int
    missing: int
    failed: int


RECONCILIATION_HEADER = ("object", "source", "target", "missing", "failed")
"""The columns of `bulk migrate`'s summary, one per `Reconciliation` field."""


@dataclass
class MigrateOutcome:
    exit_code: int
    reconciliation: list[Reconciliation] = field(default_factory=list)
    export: ExportOutcome | None = None
    imported: ImportOutcome | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    elapsed_s: float = 0.0

    def render(self) -> str:
        return format_table(RECONCILIATION_HEADER, map(astuple, self.reconciliation))

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "reconciliation": [row.__dict__ for row in self.reconciliation],
            "export": self.export.to_json() if self.export else None,
            "import": self.imported.summary.to_json() if self.imported else None,
            "warnings": self.warnings,
            "elapsed_s": round(self.elapsed_s, 3),
        }


async def run_migrate(
    settings: MigrateSettings, progress: ProgressFactory | None = None
) -> MigrateOutcome:
    """Export the source into the work folder, import it into the target, reconcile."""
    settings.workdir.mkdir(parents=True, exist_ok=True)
    with _WorkdirLock(settings.workdir):
        return await _migrate(settings, progress or ProgressFactory(quiet=True))


class _WorkdirLock(CheckpointLock):
    """The work folder's lock (`DIR/migrate.lock`); a refusal names the folder."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir / "migrate", "bulk migrate")
        self.workdir = workdir

    def acquire(self) -> None:
        try:
            super().acquire()
        except CheckpointBusyError as busy:
            raise CheckpointBusyError(self.workdir, busy.holder) from None


async def _migrate(settings: MigrateSettings, progress: ProgressFactory) -> MigrateOutcome:
    started = time.monotonic()
    source_id = await _refuse_same_workspace(settings.source, settings.target)
    export_dir = settings.workdir / "export"
    exported = await run_export(
        ExportSettings(
            connection=settings.source,
            out_dir=export_dir,
            checkpoint=settings.workdir / "export.sqlite",
            quiet=settings.quiet,
            reuse_finished=True,
        ),
        progress,
    )
    if exported.exit_code not in (0, 1):
        return MigrateOutcome(
            exported.exit_code,
            export=exported,
            error=exported.error,
            warnings=exported.warnings,
            elapsed_s=time.monotonic() - started,
        )
    imported = await run_import(
        ImportSettings(
            connection=settings.target,
            folders=(export_dir,),
            checkpoint=settings.workdir / "import.sqlite",
            quiet=settings.quiet,
            key_scope=f"migrate from {source_id or settings.source.base_url}",
        ),
        progress,
    )
    reconciliation = reconcile(read_manifest(export_dir)["counts"], imported.summary.passes)
    gaps = any(row.missing or row.failed for row in reconciliation) or exported.warnings
    exit_code = imported.exit_code if imported.exit_code not in (0, 1) else int(bool(gaps))
    return MigrateOutcome(
        exit_code,
        reconciliation,
        exported,
        imported,
        warnings=[*exported.warnings, *imported.warnings],
        error=imported.error,
        elapsed_s=time.monotonic() - started,
    )


def reconcile(source_counts: dict[str, int], passes: dict[str, PassCounts]) -> list[Reconciliation]:
    """Per object type: source count, rows that reached the target, missing and failed."""
    rows = []
    for file_name in FILE_NAMES.values():
        counts = passes.get(file_name, PassCounts())
        in_target = counts.created + counts.updated + counts.unchanged + counts.adopted
        source = int(source_counts.get(file_name, 0))
        rows.append(
            Reconciliation(
                file_name,
                source,
                in_target,
                max(source - in_target, 0),
                counts.failed + counts.skipped + counts.invalid,
            )
        )
    return rows


async def _refuse_same_workspace(
    source: ConnectionSettings, target: ConnectionSettings
) -> str | None:
    """Migrating a workspace into itself would double nothing but confuse everything: refuse.
    Returns the source's organization id (None when `/me` names none)."""
    if source.api_key == target.api_key and source.base_url == target.base_url:
        raise UsageError(
            "--from-key and --to-key name the same workspace.",
            "A workspace cannot be migrated into itself.",
        )
    source_id = await _organization_id(source)
    if source_id is not None and source_id == await _organization_id(target):
        raise UsageError(
            f"The source and the target are the same workspace ({source_id}).",
            "A workspace cannot be migrated into itself; check --from-key and --to-key.",
        )
    return source_id


async def _organization_id(connection: ConnectionSettings) -> str | None:
    async with open_client(replace(connection, concurrency=1)) as client:
        organization = (await client.me()).get("organization") or {}
    value = organization.get("id")
    return str(value) if value is not None else None
