"""Frozen settings for each command, built by the CLI and passed to one library function."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from bulk.errors import UsageError
from bulk.schema import OBJECT_SCHEMAS

DEFAULT_BASE_URL = "https://my.pivotal.app/api/v1"
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_HEADROOM_PERCENT = 10.0
"""`--headroom`: the window's share kept free for another client on the same key."""
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
class ConnectionNames:
    """The option and variable that set the key and the URL, so a remedy names what to fix.

    `bulk migrate` has two connections, set by `--from-key`/`--to-key`: a revoked target key
    must not send its user to `--api-key`.
    """

    key: str = "--api-key"
    key_envvar: str | None = "PIVOTAL_API_KEY"
    url: str = "--base-url"
    url_envvar: str | None = "PIVOTAL_BASE_URL"

    @property
    def key_source(self) -> str:
        """`--api-key or PIVOTAL_API_KEY`."""
        return _either(self.key, self.key_envvar)

    @property
    def url_source(self) -> str:
        """`--base-url or PIVOTAL_BASE_URL`."""
        return _either(self.url, self.url_envvar)


def _either(option: str, envvar: str | None) -> str:
    return f"{option} or {envvar}" if envvar else option


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an API base URL, or None. Caught here, a URL without a scheme is a
    usage error at once instead of a connection error retried for many seconds."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http:// or https:// URL"
    return None


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the API is and how hard to push it. The key is masked in every repr.

    A base URL that is not an http(s) URL is refused on construction (`UsageError`).
    """

    api_key: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    sandbox: bool = False
    """Start the embedded sandbox in-process and talk to it."""
    sandbox_db: Path = DEFAULT_SANDBOX_DB
    concurrency: int = DEFAULT_CONCURRENCY
    rate_limit: int | None = None
    """Requests/min ceiling; None: learned from X-RateLimit-Limit."""
    headroom_percent: float = DEFAULT_HEADROOM_PERCENT
    """Share of the window left free while another client uses the key."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    names: ConnectionNames = field(default=ConnectionNames(), repr=False, compare=False)
    """Which options set the key and URL, for error remedies."""

    def __post_init__(self) -> None:
        problem = url_problem(self.base_url)
        if problem is not None:
            raise UsageError(
                f"{self.names.url} {self.base_url!r} {problem}.",
                f"Example: {self.names.url} {DEFAULT_BASE_URL}",
            )

    def __repr__(self) -> str:
        return (
            f"ConnectionSettings(api_key={_mask(self.api_key)}, base_url={self.base_url!r}, "
            f"sandbox={self.sandbox}, concurrency={self.concurrency}, "
            f"rate_limit={self.rate_limit}, headroom_percent={self.headroom_percent}, "
            f"timeout_s={self.timeout_s})"
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
    maps: tuple[str, ...] = ()
    """`--map [PASS.]FIELD=COLUMN` (or `=TEMPLATE`) as given, in order; they override
    `map_file`'s maps of the same fields."""
    map_file: Path | None = None
    """`--map-file FILE.toml`: one table of maps per pass."""
    encoding: str | None = None
    delimiter: str | None = None
    """CSV delimiter (`--delimiter`); None: detected from each file's header."""
    dry_run: bool = False
    strict: bool = False
    force: bool = False
    quiet: bool = False
    key_scope: str = ""
    """Part of every idempotency key (none by default). `bulk migrate` sets the source
    workspace: its rows carry the admin's own keys, and the admin's import of the same keys
    into the target must be a request of its own, not a replay of the migration's."""

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


UNDO_ERRORS_SUFFIX = ".undo-errors.csv"
"""The undo's conflicts and failures go next to the checkpoint, apart from the import's."""


@dataclass(frozen=True)
class UndoSettings:
    connection: ConnectionSettings
    checkpoint: Path
    errors_path: Path | None = None
    """Default: `<checkpoint name>.undo-errors.csv` next to the checkpoint."""
    report_path: Path | None = None
    dry_run: bool = False
    force: bool = False
    """Delete or restore records that somebody else changed since the import wrote them."""
    quiet: bool = False

    @property
    def errors_file(self) -> Path:
        return self.errors_path or self.checkpoint.with_name(
            self.checkpoint.stem + UNDO_ERRORS_SUFFIX
        )
