"""Sandboxes in `--extra-fields` mode (a newer API version), for tests of any layer.

Fixtures (load this module as a plugin: `pytest_plugins = ["sandbox_helpers"]` in the root
`tests/conftest.py` or at the top of a test module):

- `extra_sandbox`: an in-memory sandbox in `--extra-fields` mode, rate limiting off, in the
  test's event loop (like conftest's `sandbox`);
- `threaded_extra_sandbox`: the same in its own thread, for synchronous and CLI tests (like
  conftest's `threaded_sandbox`);
- `either_sandbox`: parametrized over both modes (`normal`, `extra_fields`), to run one test
  against the documented API and the newer one.

What the newer API adds is written out in `bulk/sandbox/newer.py`; `FUTURE_CUSTOMER_STATUS` and
`FUTURE_ONBOARDING_STATE` are the unknown enum values a `Future…` name gets when the enum field is
omitted, and `CUSTOMER_EXTRA_FIELDS` etc. name the extra fields (spelled out here, not imported,
so that a test reads them from the contract).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio

from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox, sandbox_in_thread

EXTRA_FIELDS_CONFIG = SandboxConfig(rate_limit=0, test_rate_limit=0, extra_fields=True)
NORMAL_CONFIG = SandboxConfig(rate_limit=0, test_rate_limit=0)

FUTURE_NAME_PREFIX = "Future"
FUTURE_CUSTOMER_STATUS = "paused_billing"
FUTURE_ONBOARDING_STATE = "on_hold"
CUSTOMER_EXTRA_FIELDS = ("monthly_orders", "health_score", "health", "address", "integrations")
CONTACT_EXTRA_FIELDS = ("linkedin_url", "timezone")
ONBOARDING_EXTRA_FIELDS = ("checklist_progress", "risk_level")


def extra_fields_config(**overrides: Any) -> SandboxConfig:
    """The `--extra-fields` configuration, with any other setting changed."""
    return replace(EXTRA_FIELDS_CONFIG, **overrides)


@pytest_asyncio.fixture
async def extra_sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox(EXTRA_FIELDS_CONFIG) as running:
        yield running


@pytest.fixture
def threaded_extra_sandbox() -> Iterator[Sandbox]:
    with sandbox_in_thread(EXTRA_FIELDS_CONFIG) as running:
        yield running


@pytest_asyncio.fixture(params=[NORMAL_CONFIG, EXTRA_FIELDS_CONFIG], ids=["normal", "extra_fields"])
async def either_sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    config: SandboxConfig = request.param
    async with running_sandbox(config) as running:
        yield running
