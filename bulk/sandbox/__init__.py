"""A local Pivotal API (aiohttp + SQLite) that behaves like the real one, for demos and tests.

from bulk.sandbox import SandboxConfig, running_sandbox

async with running_sandbox(SandboxConfig(rate_limit=0)) as sandbox:
    ...  # talk to sandbox.base_url with key "pivotal_<workspace>"

The names load on first use (PEP 562): `bulk import` against the real API, and the CLI's
option declarations (`bulk.sandbox.config`), never pay for aiohttp's server side.
"""

from __future__ import annotations

import typing as _typing
from importlib import import_module as _import_module

from .config import SandboxConfig

_LAZY = {
    "EXAMPLE_KEY": ".server",
    "Sandbox": ".server",
    "SandboxStats": ".app",
    "running_sandbox": ".server",
    "sandbox_in_thread": ".server",
    "serve_forever": ".server",
    "start_sandbox": ".server",
}

if _typing.TYPE_CHECKING:
    from .app import SandboxStats
    from .server import (
        EXAMPLE_KEY,
        Sandbox,
        running_sandbox,
        sandbox_in_thread,
        serve_forever,
        start_sandbox,
    )
else:

    def __getattr__(name: str) -> object:
        if name not in _LAZY:
            raise AttributeError(f"module 'bulk.sandbox' has no attribute {name!r}")
        value = getattr(_import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value


__all__ = [
    "EXAMPLE_KEY",
    "Sandbox",
    "SandboxConfig",
    "SandboxStats",
    "running_sandbox",
    "sandbox_in_thread",
    "serve_forever",
    "start_sandbox",
]
