"""Sliding-window rate limits per API key, with the `X-RateLimit-*` headers they imply."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class RateDecision:
    """The outcome of counting one request against its key's window."""

    allowed: bool
    limit: int
    remaining: int
    reset_epoch_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class SlidingWindowLimiter:
    """At most `limit` requests per key in any `window_s` seconds; refusals are not counted.

    `X-RateLimit-Reset` is when the oldest request in the window leaves it (epoch seconds,
    rounded up), and `Retry-After` the whole seconds until a slot frees.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._windows: dict[str, deque[float]] = {}

    def hit(self, key: str, limit: int, now: float) -> RateDecision:
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= now - self.window_s:
            window.popleft()
        allowed = len(window) < limit
        if allowed:
            window.append(now)
        oldest_leaves_at = (window[0] if window else now) + self.window_s
        return RateDecision(
            allowed=allowed,
            limit=limit,
            remaining=max(limit - len(window), 0),
            reset_epoch_s=math.ceil(oldest_leaves_at),
            retry_after_s=0 if allowed else max(1, math.ceil(oldest_leaves_at - now)),
        )
