"""Rate limits: a sliding window per key, its headers, and 429s, on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from helpers import (
    LIVE_KEY,
    OTHER_KEY,
    RATE_HEADERS,
    TEST_KEY,
    Answer,
    ManualClock,
    api,
    assert_error,
)

from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox

START = 1_780_000_000.0
WINDOW = 10.0
LIVE_LIMIT = 5
TEST_LIMIT = 3


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest_asyncio.fixture
async def limited(clock: ManualClock) -> AsyncIterator[Sandbox]:
    config = SandboxConfig(
        rate_limit=LIVE_LIMIT, test_rate_limit=TEST_LIMIT, window_s=WINDOW, clock=clock
    )
    async with running_sandbox(config) as running:
        yield running


def rate(answer: Answer) -> tuple[int, int, int]:
    """(limit, remaining, reset) from the X-RateLimit-* headers."""
    return tuple(int(answer.headers[name]) for name in RATE_HEADERS)  # type: ignore[return-value]


def assert_no_rate_headers(answer: Answer) -> None:
    assert not {*RATE_HEADERS, "Retry-After"} & set(answer.headers), dict(answer.headers)


async def test_every_authenticated_response_carries_the_headers(
    http: aiohttp.ClientSession, limited: Sandbox
) -> None:
    reset = int(START + WINDOW)
    calls: list[tuple[str, str, object, int]] = [
        ("GET", "/customers", None, 200),
        ("POST", "/customers", {"name": "Acme"}, 201),
        ("GET", "/customers/99", None, 404),
        ("POST", "/customers", {}, 400),
        ("PUT", "/customers", None, 405),
    ]
    for remaining, (method, path, body, status) in zip(range(4, -1, -1), calls, strict=True):
        answer = await api(http, limited, method, path, json=body)
        assert answer.status == status, answer.raw
        assert rate(answer) == (LIVE_LIMIT, remaining, reset)
        assert "Retry-After" not in answer.headers
    assert limited.stats.requests == 5


async def test_over_the_limit_is_429_with_retry_after(
    http: aiohttp.ClientSession, limited: Sandbox, clock: ManualClock
) -> None:
    for _ in range(LIVE_LIMIT):
        assert (await api(http, limited, "GET", "/customers")).status == 200
    refused = await api(http, limited, "POST", "/customers", json={"name": "Acme"})
    assert_error(refused, 429, "rate_limit_error", "rate_limited")
    assert rate(refused) == (LIVE_LIMIT, 0, int(START + WINDOW))
    assert refused.headers["Retry-After"] == "10"
    clock.advance(3.5)
    later = await api(http, limited, "GET", "/me")
    assert_error(later, 429, "rate_limit_error", "rate_limited")
    assert later.headers["Retry-After"] == "7"  # ceil(6.5)
    clock.advance(6.4)
    last = await api(http, limited, "GET", "/me")
    assert last.headers["Retry-After"] == "1"  # 0.1 s left, still a whole second
    assert (limited.stats.requests, limited.stats.rate_limited) == (5, 3)


async def test_refused_requests_do_not_count_and_the_window_slides(
    http: aiohttp.ClientSession, limited: Sandbox, clock: ManualClock
) -> None:
    assert rate(await api(http, limited, "GET", "/customers")) == (5, 4, int(START + 10))
    clock.advance(1)
    for remaining in (3, 2, 1, 0):
        answer = await api(http, limited, "GET", "/customers")
        assert rate(answer) == (5, remaining, int(START + 10))
    for _ in range(3):
        clock.advance(1)
        assert (await api(http, limited, "GET", "/customers")).status == 429
    clock.now = START + WINDOW  # the first request leaves the window, nothing else does
    freed = await api(http, limited, "GET", "/customers")
    assert freed.status == 200
    assert rate(freed) == (5, 0, int(START + 1 + WINDOW))
    refused = await api(http, limited, "GET", "/customers")
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "1"
    clock.now = START + 1 + WINDOW  # the four requests at START + 1 leave together
    assert rate(await api(http, limited, "GET", "/customers")) == (5, 3, int(START + 2 * WINDOW))


async def test_reset_is_the_oldest_request_plus_the_window_rounded_up(
    http: aiohttp.ClientSession, limited: Sandbox, clock: ManualClock
) -> None:
    clock.advance(0.25)
    first = await api(http, limited, "GET", "/customers")
    assert rate(first) == (5, 4, int(START) + 11)  # ceil(START + 10.25)
    clock.advance(3)
    second = await api(http, limited, "GET", "/customers")
    assert rate(second) == (5, 3, int(START) + 11)


async def test_a_test_key_has_its_own_bucket(http: aiohttp.ClientSession, limited: Sandbox) -> None:
    for _ in range(LIVE_LIMIT):
        await api(http, limited, "GET", "/customers", key=LIVE_KEY)
    assert (await api(http, limited, "GET", "/customers", key=LIVE_KEY)).status == 429
    for remaining in (2, 1, 0):
        answer = await api(http, limited, "GET", "/customers", key=TEST_KEY)
        assert answer.status == 200
        assert rate(answer) == (TEST_LIMIT, remaining, int(START + WINDOW))
    refused = await api(http, limited, "GET", "/customers", key=TEST_KEY)
    assert_error(refused, 429, "rate_limit_error", "rate_limited")
    assert rate(refused)[:2] == (TEST_LIMIT, 0)
    other = await api(http, limited, "GET", "/customers", key=OTHER_KEY)
    assert (other.status, rate(other)[:2]) == (200, (LIVE_LIMIT, 4))


async def test_health_is_not_rate_limited(http: aiohttp.ClientSession, limited: Sandbox) -> None:
    for _ in range(LIVE_LIMIT):
        await api(http, limited, "GET", "/customers")
    for _ in range(LIVE_LIMIT + 3):
        answer = await api(http, limited, "GET", "/health")
        assert answer.status == 200
        assert_no_rate_headers(answer)
    assert limited.stats.rate_limited == 0


async def test_unauthenticated_responses_carry_no_rate_headers(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    config = SandboxConfig(
        rate_limit=LIVE_LIMIT,
        test_rate_limit=TEST_LIMIT,
        window_s=WINDOW,
        clock=clock,
        revoked_keys=frozenset({"pivotal_revoked"}),
    )
    async with running_sandbox(config) as sandbox:
        for key, code in (
            (None, "missing_api_key"),
            ("nope", "invalid_api_key"),
            ("pivotal_revoked", "api_key_revoked"),
        ):
            for _ in range(LIVE_LIMIT + 1):
                answer = await api(http, sandbox, "GET", "/customers", key=key)
                assert_error(answer, 401, "authentication_error", code)
                assert_no_rate_headers(answer)
        answer = await api(http, sandbox, "GET", "/customers")
        assert rate(answer) == (LIVE_LIMIT, 4, int(START + WINDOW))


@pytest.mark.parametrize(("live_limit", "test_limit"), [(0, 0), (0, TEST_LIMIT)])
async def test_a_limit_of_zero_turns_limiting_off(
    http: aiohttp.ClientSession, clock: ManualClock, live_limit: int, test_limit: int
) -> None:
    config = SandboxConfig(
        rate_limit=live_limit, test_rate_limit=test_limit, window_s=WINDOW, clock=clock
    )
    async with running_sandbox(config) as sandbox:
        for _ in range(LIVE_LIMIT * 4):
            answer = await api(http, sandbox, "GET", "/customers", key=LIVE_KEY)
            assert answer.status == 200
            assert_no_rate_headers(answer)
        answer = await api(http, sandbox, "GET", "/customers", key=TEST_KEY)
        if test_limit:
            assert rate(answer) == (TEST_LIMIT, 2, int(START + WINDOW))
        else:
            assert_no_rate_headers(answer)
        assert sandbox.stats.rate_limited == 0
