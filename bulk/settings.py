"""Frozen settings for each command, built by the CLI and passed to one library function."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from bulk.schema import OBJECT_SCHEMAS

DEFAULT_BASE_URL = "https://my.pivotal.app/api/v1"
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_SANDBOX_DB = Path(".bulk/sandbox.sqlite")
DEFAULT_CHECKPOINT = Path("bulk-import.sqlite")
DEFAULT_PART_ROWS = 10_000
EXPORT_FORMATS = ("parquet", "csv")
DEFAULT_EXPORT_FORMAT = EXPORT_FORMATS[0]
EXPORT_CHECKPOINT_NAME = ".bulk-export.sqlite"
"""The export's checkpoint inside its folder, unless `--checkpoint` puts it elsewhere."""
PASSES = tuple(schema.collection for schema in OBJECT_SCHEMAS)
"""The import passes in the order they run: parents first."""


def pass_order(pass_name: str) -> int:
    """Sort key putting passes in the order they run (unknown names last)."""
    return PASSES.index(pass_name) if pass_name in PASSES else len(PASSES)


def _mask(key: str | None) -> str:
    return "None" if key is None else "'***'"


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the API is and how hard to push it. The key is masked in every repr."""

    api_key: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    sandbox: bool = False
    """Start the embedded sandbox in-process and talk to it."""
    sandbox_db: Path = DEFAULT_SANDBOX_DB
    concurrency: int = DEFAULT_CONCURRENCY
    rate_limit: int | None = None
    """Requests/min ceiling; None: learned from X-RateLimit-Limit."""
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __repr__(self) -> str:
        return (
            f"ConnectionSettings(api_key={_mask(self.api_key)}, base_url={self.base_url!r}, "
            f"sandbox={self.sandbox}, concurrency={self.concurrency}, "
            f"rate_limit={self.rate_limit}, timeout_s={self.timeout_s})"
        )


@dataclass(frozen=True)
class ImportSettings:
    connection: ConnectionSettings
    folders: tuple[Path, ...] = ()
    files: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    """Explicit files by pass (`--customers F`, ...)."""
    checkpoint: Path = DEFAULT_CHECKPOINT
    errors_path: Path | None = None
    """Default: `<checkpoint name>.errors.csv` next to the checkpoint."""
    results_path: Path | None = None
    report_path: Path | None = None
    passes: tuple[str, ...] = PASSES
    mapping: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Field name → column name (`--map FIELD=COLUMN`)."""
    encoding: str | None = None
    dry_run: bool = False
    strict: bool = False
    force: bool = False
    quiet: bool = False

    def sibling(self, suffix: str) -> Path:
        """A file next to the checkpoint: `bulk-import.sqlite` → `bulk-import<suffix>`."""
        return self.checkpoint.with_name(self.checkpoint.stem + suffix)

    @property
    def errors_file(self) -> Path:
        return self.errors_path or self.sibling(".errors.csv")

    @property
    def results_file(self) -> Path:
        return self.results_path or self.sibling(".results.csv")


@dataclass(frozen=True)
class ExportSettings:
    connection: ConnectionSettings
    out_dir: Path
    checkpoint: Path | None = None
    """Default: `EXPORT_CHECKPOINT_NAME` inside `out_dir`."""
    file_format: str = DEFAULT_EXPORT_FORMAT
    report_path: Path | None = None
    quiet: bool = False
    part_rows: int = DEFAULT_PART_ROWS
    reuse_finished: bool = False
    """Keep a finished export as it is (a re-run migration) instead of exporting anew."""
    overwrite: bool = False
    """Replace files in `out_dir` that this export did not write (else it refuses to start)."""

    @property
    def checkpoint_file(self) -> Path:
        return self.checkpoint or self.out_dir / EXPORT_CHECKPOINT_NAME


@dataclass(frozen=True)
class MigrateSettings:
    source: ConnectionSettings
    target: ConnectionSettings
    workdir: Path
    report_path: Path | None = None
    quiet: bool = False
