"""Contract tests: the client against bodies written by hand from pivotal-api.md."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from server import ContractServer


@pytest_asyncio.fixture
async def contract() -> AsyncIterator[ContractServer]:
    """A `ContractServer` on a free loopback port, with no routes yet."""
    server = ContractServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
