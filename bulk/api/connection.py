"""Opening the API for a command: the real one, or the embedded sandbox started in-process."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from bulk.api.client import PivotalClient
from bulk.errors import SandboxError, UsageError
from bulk.interrupts import StopRequest
from bulk.sandbox import SandboxConfig
from bulk.settings import ConnectionSettings

EMBEDDED_RATE_LIMIT = 600
"""The embedded sandbox answers like a paid plan (600/min), so the demo runs in seconds."""


@asynccontextmanager
async def open_client(
    settings: ConnectionSettings, stop: StopRequest | None = None
) -> AsyncIterator[PivotalClient]:
    """A client for the configured API; with `sandbox`, start the embedded one first.

    With `stop`, requests still waiting (for a slot, the rate window or a retry) once it is set
    raise `RequestAbandoned` instead of being sent.
    """
    async with AsyncExitStack() as stack:
        base_url, api_key = settings.base_url, settings.api_key
        if settings.sandbox:
            base_url = await stack.enter_async_context(_embedded_sandbox(settings))
            from bulk.sandbox import EXAMPLE_KEY  # the sandbox's server side loads only here

            api_key = api_key or EXAMPLE_KEY
        if not api_key:
            raise UsageError("No API key.", _no_key_remedy(settings))
        yield await stack.enter_async_context(
            PivotalClient(
                base_url,
                api_key,
                concurrency=settings.concurrency,
                rate_limit=settings.rate_limit,
                headroom_percent=settings.headroom_percent,
                timeout_s=settings.timeout_s,
                stop=stop,
                names=settings.names,
            )
        )


def _no_key_remedy(settings: ConnectionSettings) -> str:
    names = settings.names
    where = f"Pass {names.key}" + (f", set {names.key_envvar}," if names.key_envvar else "")
    return f"{where} or add --sandbox to try bulk locally."


@asynccontextmanager
async def _embedded_sandbox(settings: ConnectionSettings) -> AsyncIterator[str]:
    settings.sandbox_db.parent.mkdir(parents=True, exist_ok=True)
    config = SandboxConfig(
        db_path=settings.sandbox_db,
        rate_limit=EMBEDDED_RATE_LIMIT,
        test_rate_limit=EMBEDDED_RATE_LIMIT,
    )
    try:
        from bulk.sandbox import start_sandbox

        sandbox = await start_sandbox(config)
    except (OSError, sqlite3.DatabaseError) as error:
        raise SandboxError(f"The embedded sandbox could not start: {error}.") from error
    try:
        yield sandbox.base_url
    finally:
        await sandbox.stop()
