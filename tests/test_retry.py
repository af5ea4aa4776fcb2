"""The retry policy: backoff with full jitter, Retry-After parsing, and when to give up."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bulk.api.retry import (
    RetryPolicy,
    backoff_s,
    is_retryable,
    parse_retry_after,
    wait_before_retry,
)
from bulk.errors import (
    ApiStatusError,
    AuthenticationError,
    NoResponseError,
    RateLimitedError,
    ServerError,
)

POLICY = RetryPolicy()
NOW = datetime(2026, 5, 26, 17, 21, 9, tzinfo=UTC)


class Highest(random.Random):
    """Always draws the top of the range, to see the curve under the jitter."""

    def uniform(self, a: float, b: float) -> float:
        return b


def rate_limited(retry_after_s: float | None = None) -> RateLimitedError:
    return RateLimitedError(
        429, "rate_limit_error", "rate_limited", "slow down", retry_after_s=retry_after_s
    )


def server_error() -> ServerError:
    return ServerError(500, "internal_error", "internal_error", "oops")


# -- backoff ---------------------------------------------------------------------------------


def test_backoff_curve_doubles_from_base_and_stops_at_the_cap() -> None:
    curve = [backoff_s(attempt, POLICY, Highest()) for attempt in range(1, 10)]
    assert curve == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_backoff_stays_within_zero_and_the_capped_curve() -> None:
    rng = random.Random(1234)
    for attempt in range(1, 20):
        ceiling = min(POLICY.cap_s, POLICY.base_s * 2 ** (attempt - 1))
        for _ in range(200):
            assert 0.0 <= backoff_s(attempt, POLICY, rng) <= ceiling


def test_full_jitter_spreads_over_the_whole_range() -> None:
    rng = random.Random(42)
    draws = [backoff_s(5, POLICY, rng) for _ in range(2000)]  # ceiling 8 s
    assert min(draws) < 0.5
    assert max(draws) > 7.5
    assert 3.5 < sum(draws) / len(draws) < 4.5


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = [backoff_s(n, POLICY, random.Random(7)) for n in range(1, 6)]
    again = [backoff_s(n, POLICY, random.Random(7)) for n in range(1, 6)]
    assert first == again


def test_backoff_survives_absurd_attempt_numbers() -> None:
    assert backoff_s(10_000, POLICY, Highest()) == POLICY.cap_s
    assert backoff_s(0, POLICY, Highest()) == POLICY.base_s


# -- Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 3 ", 3.0), ("1", 1.0)],
)
def test_retry_after_in_whole_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert later.endswith("GMT")
    assert parse_retry_after(later, NOW) == 30.0


def test_retry_after_date_compares_in_utc_whatever_the_zone_of_now() -> None:
    later = format_datetime(NOW + timedelta(seconds=5), usegmt=True)
    elsewhere = NOW.astimezone(datetime.now().astimezone().tzinfo)
    assert parse_retry_after(later, elsewhere) == 5.0
    assert parse_retry_after(later, NOW.replace(tzinfo=None)) == 5.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "0",
        "-5",
        "1.5",
        "soon",
        "Wed, 99 Foo 2015 07:28:00 GMT",
        format_datetime(NOW - timedelta(seconds=1), usegmt=True),
        format_datetime(NOW, usegmt=True),
    ],
)
def test_unusable_retry_after_falls_back_to_backoff(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


# -- what is retried, and for how long -------------------------------------------------------


def test_retryable_errors() -> None:
    assert is_retryable(NoResponseError("timed out"))
    assert is_retryable(server_error())
    assert is_retryable(rate_limited())
    assert is_retryable(ApiStatusError(409, "conflict", "idempotency_key_in_use", "busy"))


def test_errors_about_the_request_are_not_retried() -> None:
    assert not is_retryable(ApiStatusError(409, "conflict", "slug_taken", "taken", "slug"))
    assert not is_retryable(ApiStatusError(400, "invalid_request_error", "missing_field", "x"))
    assert not is_retryable(AuthenticationError(401, "authentication_error", "revoked", "x"))
    assert not is_retryable(ValueError("not ours"))
    not_found = ApiStatusError(404, "not_found", "customer_not_found", "x")
    assert wait_before_retry(1, not_found, POLICY, Highest()) is None


def test_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    waits = [wait_before_retry(n, server_error(), policy, Highest()) for n in (1, 2, 3)]
    assert waits == [0.5, 1.0, None]
    once = RetryPolicy(max_attempts=1)
    assert wait_before_retry(1, NoResponseError("x"), once, Highest()) is None


def test_rate_limited_waits_retry_after_and_has_its_own_cap() -> None:
    policy = RetryPolicy(max_attempts=2, max_rate_limited=5)
    assert wait_before_retry(4, rate_limited(7.0), policy, Highest()) == 7.0
    assert wait_before_retry(5, rate_limited(7.0), policy, Highest()) is None


def test_rate_limited_without_usable_retry_after_backs_off() -> None:
    assert wait_before_retry(3, rate_limited(None), POLICY, Highest()) == 2.0
    assert wait_before_retry(3, rate_limited(0.0), POLICY, Highest()) == 2.0
