"""A local Pivotal API (aiohttp + SQLite) that behaves like the real one, for demos and tests.

from bulk.sandbox import SandboxConfig, running_sandbox

async with running_sandbox(SandboxConfig(rate_limit=0)) as sandbox:
    ...  # talk to sandbox.base_url with key "pivotal_<workspace>"
"""

from .app import SandboxStats
from .config import SandboxConfig
from .server import (
    EXAMPLE_KEY,
    Sandbox,
    running_sandbox,
    sandbox_in_thread,
    serve_forever,
    start_sandbox,
)

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
