"""bulk: move data in and out of the Pivotal API in bulk, safely and at the rate limit.

    import asyncio
    import bulk

    settings = bulk.ImportSettings(bulk.ConnectionSettings(api_key=...), folders=(folder,))
    outcome = asyncio.run(bulk.run_import(settings))

The settings and the exception tree are imported with the package; the commands, their outcomes
and the sandbox on first use (PEP 562), so that `bulk --help` does not wait for polars.
Internal modules never import from here: they name the module that defines a thing. Helpers
are imported under private names, so that the namespace holds nothing but `__all__`.
"""

from __future__ import annotations

import typing as _typing
from importlib import import_module as _import_module

from bulk._version import __version__
from bulk.errors import (
    ApiError,
    ApiStatusError,
    ApiUnreachableError,
    AuthenticationError,
    BulkError,
    CheckpointBusyError,
    CheckpointError,
    InputError,
    NoResponseError,
    NotTheApiError,
    OutputError,
    RateLimitedError,
    RequestAbandoned,
    RunInterrupted,
    SandboxError,
    ServerError,
    UsageError,
)
from bulk.settings import (
    ConnectionSettings,
    ExportSettings,
    ImportSettings,
    MigrateSettings,
    UndoSettings,
)

_LAZY = {
    "ExportOutcome": "bulk.exporting.exporter",
    "ImportOutcome": "bulk.importing.importer",
    "ImportSummary": "bulk.importing.reports",
    "MigrateOutcome": "bulk.migrate",
    "PassCounts": "bulk.importing.reports",
    "Reconciliation": "bulk.migrate",
    "SandboxConfig": "bulk.sandbox",
    "UndoOutcome": "bulk.undoing.undoer",
    "run_export": "bulk.exporting.exporter",
    "run_import": "bulk.importing.importer",
    "run_migrate": "bulk.migrate",
    "run_undo": "bulk.undoing.undoer",
    "running_sandbox": "bulk.sandbox",
}
"""Public name → the module that defines it, imported when the name is first used."""

if _typing.TYPE_CHECKING:
    from bulk.exporting.exporter import ExportOutcome, run_export
    from bulk.importing.importer import ImportOutcome, run_import
    from bulk.importing.reports import ImportSummary, PassCounts
    from bulk.migrate import MigrateOutcome, Reconciliation, run_migrate
    from bulk.sandbox import SandboxConfig, running_sandbox
    from bulk.undoing.undoer import UndoOutcome, run_undo
else:

    def __getattr__(name: str) -> object:
        if name not in _LAZY:
            raise AttributeError(f"module 'bulk' has no attribute {name!r}")
        value = getattr(_import_module(_LAZY[name]), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})


__all__ = [
    "ApiError",
    "ApiStatusError",
    "ApiUnreachableError",
    "AuthenticationError",
    "BulkError",
    "CheckpointBusyError",
    "CheckpointError",
    "ConnectionSettings",
    "ExportOutcome",
    "ExportSettings",
    "ImportOutcome",
    "ImportSettings",
    "ImportSummary",
    "InputError",
    "MigrateOutcome",
    "MigrateSettings",
    "NoResponseError",
    "NotTheApiError",
    "OutputError",
    "PassCounts",
    "RateLimitedError",
    "Reconciliation",
    "RequestAbandoned",
    "RunInterrupted",
    "SandboxConfig",
    "SandboxError",
    "ServerError",
    "UndoOutcome",
    "UndoSettings",
    "UsageError",
    "__version__",
    "run_export",
    "run_import",
    "run_migrate",
    "run_undo",
    "running_sandbox",
]
