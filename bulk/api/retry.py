"""When to retry a failed request, and how long to wait first: small pure functions.

The client asks one question after each failure: `wait_before_retry(attempt, error, policy, rng)`
→ seconds to wait, or None to give up. Everything here is a pure function of its arguments (the
random source and the current time are passed in), so tests assert waits instead of sleeping.

- Capped exponential backoff with *full* jitter (a uniform draw in [0, min(cap, base·2^(n-1))]):
  workers that failed together spread out instead of retrying in lockstep.
- A 429 waits for the server's `Retry-After` when it gives a usable one; otherwise it falls back
  to backoff. 429s are counted apart from other failures (`max_rate_limited`): being told to slow
  down says nothing about the request, so it must not use up `max_attempts`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from bulk.errors import ApiStatusError, NoResponseError, RateLimitedError, ServerError

IDEMPOTENCY_KEY_IN_USE = "idempotency_key_in_use"
"""409 code for "the first request with this key is still running": retrying later is the fix."""

_MAX_EXPONENT = 62
"""Beyond this 2**n only overflows a float; the cap has long applied anyway."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. `max_attempts` counts every send of a request, the first included."""

    max_attempts: int = 8
    base_s: float = 0.5
    cap_s: float = 30.0
    max_rate_limited: int = 50
    """429s allowed for one request; they do not use up `max_attempts`."""


def backoff_s(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Seconds to wait after failure number `attempt` (1-based): full jitter, capped curve."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    ceiling = min(policy.cap_s, policy.base_s * 2.0**exponent)
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header: whole seconds or an HTTP date.

    None means "no usable advice, fall back to backoff": a missing header, garbage, 0, a negative
    number or a date already past. A zero wait after a 429 would just earn another 429.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(int(text))
        return seconds if seconds > 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    delta = (_as_utc(when) - _as_utc(now)).total_seconds()
    return delta if delta > 0 and math.isfinite(delta) else None


def is_retryable(error: BaseException) -> bool:
    """Could sending the same request again succeed? Only if the failure was not the request's.

    No response and 5xx leave the outcome unknown (the retry carries the same Idempotency-Key, so
    it cannot create twice); 429 is "not now". `idempotency_key_in_use` (409) means the first
    attempt, e.g. one we timed out on, is still running on the server: its result will replay.
    """
    if isinstance(error, NoResponseError | ServerError | RateLimitedError):
        return True
    return (
        isinstance(error, ApiStatusError)
        and error.status == 409
        and error.code == IDEMPOTENCY_KEY_IN_USE
    )


def wait_before_retry(
    attempt: int, error: BaseException, policy: RetryPolicy, rng: random.Random
) -> float | None:
    """Seconds to wait before sending the request again, or None to give up and raise `error`.

    `attempt` counts the failures of this kind so far for this request, this one included: 429s
    for a `RateLimitedError`, every other failure otherwise (the caller keeps the two counts).
    """
    if not is_retryable(error):
        return None
    if isinstance(error, RateLimitedError):
        if attempt >= policy.max_rate_limited:
            return None
        advised = error.retry_after_s
        return advised if advised is not None and advised > 0 else backoff_s(attempt, policy, rng)
    if attempt >= policy.max_attempts:
        return None
    return backoff_s(attempt, policy, rng)


def _as_utc(moment: datetime) -> datetime:
    """HTTP dates are GMT; a naive datetime is taken to be UTC rather than local time."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
