"""How long a run's requests will take: the `RateGovernor`'s sliding window, replayed.

A dry run cannot time what it does not send, so it replays the governor's schedule instead. The
governor sends request *i* as soon as both a concurrency slot is free and the window has room:
no earlier than `window` after request *i - limit* was sent, and never before the requests the
server already counts (another client's, or the dry run's own `GET /me`) leave the window. Each
request then holds its slot for one round trip. The same rule, with the key's real limit, the
window and latency measured on `GET /me`, gives the estimate.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Pace:
    """What the schedule depends on, as `GET /me` showed it."""

    limit: int | None
    """Requests per window; None for a server that does not limit."""
    window_s: float
    """The window the governor keeps to (measured, with its margin)."""
    latency_s: float
    """One round trip, plus the client's own work per request."""
    concurrency: int
    in_window: int = 0
    """Requests the server already counts in the window (from `X-RateLimit-Remaining`)."""
    reset_in_s: float = 0.0
    """When the oldest of those leaves the window (from `X-RateLimit-Reset`)."""


def estimate_seconds(requests: int, pace: Pace) -> float:
    """Wall time from the first request leaving to the last answer arriving."""
    if requests <= 0:
        return 0.0
    slots = max(pace.concurrency, 1)
    if pace.limit is None:
        return math.ceil(requests / slots) * pace.latency_s
    window_s = pace.window_s
    recent: deque[float] = deque(_earlier_sends(pace, window_s), maxlen=pace.limit)
    free_at = [0.0] * slots
    finished = 0.0
    for _ in range(requests):
        start = heapq.heappop(free_at)
        if len(recent) == pace.limit:
            start = max(start, recent[0] + window_s)
        recent.append(start)
        finished = start + pace.latency_s
        heapq.heappush(free_at, finished)
    return finished


def _earlier_sends(pace: Pace, window_s: float) -> list[float]:
    """The requests already in the window, as the governor's phantom entries see them.

    The oldest leaves at `reset_in_s`; when the others do is not said, so, as the governor
    does, they are taken to leave a window from now.
    """
    assert pace.limit is not None
    count = min(max(pace.in_window, 0), pace.limit)
    if count == 0:
        return []
    return [min(pace.reset_in_s - window_s, 0.0), *[0.0] * (count - 1)]
