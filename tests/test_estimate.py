"""The dry run's estimate replays the governor's sliding window, concurrency and latency."""

from __future__ import annotations

import pytest

from bulk.api.client import PivotalClient
from bulk.api.estimate import Pace, estimate_seconds
from bulk.sandbox import SandboxConfig, running_sandbox

W = 60.25


def test_an_unlimited_server_is_bound_by_concurrency_and_latency_alone() -> None:
    pace = Pace(limit=None, window_s=W, latency_s=0.01, concurrency=4)
    assert estimate_seconds(1000, pace) == pytest.approx(250 * 0.01)


def test_a_window_worth_goes_at_once_then_one_window_per_limit() -> None:
    pace = Pace(limit=60, window_s=W, latency_s=0.05, concurrency=4)
    # 60 in 15 rounds of 4, then the next 60 a window after each of the first, and so on
    assert estimate_seconds(60, pace) == pytest.approx(15 * 0.05)
    assert estimate_seconds(61, pace) == pytest.approx(W + 0.05)
    assert estimate_seconds(180, pace) == pytest.approx(2 * W + 15 * 0.05)


def test_a_fast_key_is_bound_by_concurrency_within_the_window() -> None:
    pace = Pace(limit=600, window_s=W, latency_s=0.05, concurrency=4)
    assert estimate_seconds(600, pace) == pytest.approx(150 * 0.05)
    assert estimate_seconds(1500, pace) == pytest.approx(2 * W + 75 * 0.05)


def test_requests_the_server_already_counts_delay_the_start() -> None:
    fresh = Pace(limit=10, window_s=W, latency_s=0.1, concurrency=1)
    busy = Pace(limit=10, window_s=W, latency_s=0.1, concurrency=1, in_window=10, reset_in_s=5)
    assert estimate_seconds(1, fresh) == pytest.approx(0.1)
    # the oldest leaves at Reset; the governor takes the other nine to leave a window from now
    assert estimate_seconds(1, busy) == pytest.approx(5 + 0.1)
    assert estimate_seconds(2, busy) == pytest.approx(W + 0.1)


def test_nothing_to_send_takes_no_time() -> None:
    assert estimate_seconds(0, Pace(limit=60, window_s=W, latency_s=1, concurrency=4)) == 0


async def test_the_client_reports_the_keys_pace_and_its_rate_limit_wait() -> None:
    config = SandboxConfig(rate_limit=5, test_rate_limit=0, window_s=30)
    async with (
        running_sandbox(config) as sandbox,
        PivotalClient(sandbox.base_url, "pivotal_acme") as client,
    ):
        await client.me()
        pace = client.pace()
        assert (pace.limit, pace.in_window, pace.concurrency) == (5, 1, 4)
        assert 29 < pace.window_s < 32 and 28 < pace.reset_in_s < 32
        assert pace.latency_s > 0
        assert client.waiting_status() is None
        for _ in range(4):
            await client.me()
        status = client.waiting_status()
        assert status is not None and status.startswith("waiting for the rate limit, ")
        assert 28 <= int(status.removeprefix("waiting for the rate limit, ").split()[0]) <= 32
