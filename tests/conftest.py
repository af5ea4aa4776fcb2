"""Shared fixtures: every test gets a clean environment, and sandboxes run on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from helpers import ManualClock

from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox, sandbox_in_thread


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PIVOTAL_* variable leaks in from the developer's shell; state goes to a temp folder."""
    for name in list(__import__("os").environ):
        if name.startswith("PIVOTAL_") or name == "BULK_DEBUG":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """An in-memory sandbox on a free loopback port, rate limiting off."""
    async with running_sandbox(SandboxConfig(rate_limit=0, test_rate_limit=0)) as running:
        yield running


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def timed(clock: ManualClock) -> AsyncIterator[Sandbox]:
    """A sandbox on a manual clock, so that the test decides every `created_at`."""
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, clock=clock)
    async with running_sandbox(config) as running:
        yield running


@pytest.fixture
def threaded_sandbox() -> Iterator[Sandbox]:
    """A sandbox in its own thread, for synchronous tests and subprocesses."""
    with sandbox_in_thread(SandboxConfig(rate_limit=0, test_rate_limit=0)) as running:
        yield running
