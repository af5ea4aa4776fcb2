"""Sending as fast as the server's sliding window allows, and never faster.

The API counts each key's requests in a sliding window (60 s, `X-RateLimit-Limit` requests). A
steady pacer (one request every window/limit seconds) never trips it but wastes the window: the
optimum sends a full window's worth as fast as concurrency allows, then each further request as
soon as an old one leaves the window. `RateGovernor` does that by keeping its own log of send
times that mirrors the server's window, and letting the headers correct it:

- `X-RateLimit-Limit` sets the size of the log (60 until a response says otherwise; no header at
  all means the server does not limit, and only the user's ceiling applies).
- The window length is 60 s per the docs, then measured. Each response bounds "window +
  latency": `Reset` is when the oldest request the server counts leaves (rounded up to whole
  seconds), and with nobody else on the key that request is the `used`-th most recent of ours,
  so `Reset` minus its send time is at most the window plus its latency, more than that minus
  1 s. We keep the tightest bounds; inside them we take the documented 60 s plus the slowest
  round trip seen (a request reaches the server within one round trip), else the upper bound,
  and add a small margin for latency that varies.
- When `Remaining` shows the server counts more requests than our log (another client on the key,
  or a run killed a moment ago), the difference becomes phantom entries. One expires at `Reset`
  (unless `Reset` may be our own oldest request's); the others when a request sent now would,
  because `Reset` only tells when the *oldest* leaves and releasing them all at once would send
  a burst straight into 429s.
- While a served response shows another client on the key (and for a window after), we leave
  `--headroom` (10 %) of the window free for it, and also what its pace will add before any of
  its requests leaves (its count over the age `Reset` gives its oldest): a bulk run sharing a key
  with a live integration must not starve it.
- A 429's `Retry-After` pauses every waiter until the given time. `Remaining: 0` needs no pause
  of its own: the log (with its phantoms) is full then and frees its first slot when the oldest
  entry leaves, exactly, where the whole-second `Reset` could cost up to a second. A refused
  request (its response carries `Retry-After`) is taken back out of our log.

An explicit user ceiling (`--rate-limit N`/min) is an `AsyncLimiter(1, 60 / N)`: one token every
60/N s, never a burst (an `AsyncLimiter(N, 60)` starts full and bursts). It is taken once the
window has room, in the same turn, so a wait for the window cannot bunch requests together.

Until a window is measured, it is the documented 60 s: against a server with a shorter window
whose requests are never down to one of ours (other traffic at start), we are slow, not wrong.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Mapping

from aiolimiter import AsyncLimiter

from bulk.schema import LIVE_KEY_RATE_LIMIT, RATE_WINDOW_S
from bulk.settings import DEFAULT_HEADROOM_PERCENT

DEFAULT_LIMIT = LIVE_KEY_RATE_LIMIT
"""Requests per window assumed until a response carries `X-RateLimit-Limit` (the live-key limit)."""
DEFAULT_WINDOW_S = RATE_WINDOW_S
"""The documented window, used until a response lets us measure it."""
WINDOW_MARGIN_S = 0.25
"""Added to the measured window: later requests may reach the server slower than measured ones."""
MAX_WINDOW_S = 3600.0
"""A `Reset` further than this from now is not epoch seconds (milliseconds?) and is ignored."""
MAX_NAP_S = 1.0
"""Waiters re-check at least this often, so a raised limit or a new pause takes effect quickly."""

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateGovernor:
    """Admits requests so that the key's sliding window is never exceeded.

    Create it inside the running event loop (the user ceiling's limiter binds to it). Call
    `acquire()` immediately before each send, `observe()` with each response's headers and the
    time that request was sent, and `pause_until()` after a 429.
    """

    def __init__(
        self,
        *,
        ceiling_per_min: int | None = None,
        headroom_percent: float = DEFAULT_HEADROOM_PERCENT,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._headroom = headroom_percent / 100
        self._sleep = sleep
        self._ceiling = AsyncLimiter(1, 60.0 / ceiling_per_min) if ceiling_per_min else None
        self._limit = DEFAULT_LIMIT
        self._limited: bool | None = None
        """None until the first response; then whether the server sends rate-limit headers."""
        self._window_s = DEFAULT_WINDOW_S
        self._window_bounds: tuple[float, float] | None = None
        """(highest lower bound, lowest upper bound) on window + latency, once measured."""
        self._sent: list[float] = []
        """Our send times, sorted; kept two windows so `observe` can look back from a send time."""
        self._phantoms: list[float] = []
        """Expiry times of requests the server counts and we did not send, sorted."""
        self._paused_until = 0.0
        self._max_round_trip_s = 0.0
        self._others_until = 0.0
        self._others_per_window = 0
        """What the other client on the key holds in a full window, at the pace it showed."""
        """Until when we keep the headroom: a window after another client was last seen."""
        """The slowest answer seen: how late at most a request reaches the server."""
        self._turn = asyncio.Lock()
        """Waiters take turns (FIFO), so spacing and the log's bookkeeping stay simple."""

    @property
    def limit(self) -> int | None:
        """Requests per window we keep to; None when the server has shown it does not limit."""
        return None if self._limited is False else self._limit

    @property
    def window_s(self) -> float:
        """The window length we assume: the documented 60 s, or what the headers showed."""
        return self._window_s

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def waiting_s(self) -> float:
        """Seconds a request asking now would wait for the window or a pause (0: none)."""
        return self._wait_s(self._clock())

    def counted(self) -> tuple[int, float | None]:
        """Requests the window holds now (ours and the server's others), and in how many
        seconds the oldest of them leaves (None when it holds none)."""
        now = self._clock()
        self._forget(now)
        first_alive = bisect.bisect_right(self._sent, now - self._window_s)
        expiries = [sent + self._window_s for sent in self._sent[first_alive:]] + self._phantoms
        if not expiries:
            return 0, None
        return len(expiries), min(expiries) - now

    async def acquire(self) -> None:
        """Wait until one more request fits in the window (and under the ceiling); count it sent."""
        async with self._turn:
            while True:
                await self._wait_for_window()
                if self._ceiling is None:
                    break
                await self._ceiling.acquire()
                # A pause may have arrived while we waited for the ceiling: check again, so the
                # ceiling's spacing holds and the window is still respected.
                if self._wait_s(self._clock()) <= 0:
                    break
            if self._limited is not False:  # an unlimited server needs no log
                bisect.insort(self._sent, self._clock())

    def try_acquire(self) -> bool:
        """`acquire()` without waiting: count a request sent now if nobody waits and it fits."""
        if self._turn.locked() or self._ceiling is not None or self._wait_s(self._clock()) > 0:
            return False
        if self._limited is not False:
            bisect.insort(self._sent, self._clock())
        return True

    def observe(self, headers: Mapping[str, str], sent_at: float) -> None:
        """Learn from one response's `X-RateLimit-*` headers; `sent_at` is when it was sent."""
        fields = {name.lower(): value for name, value in headers.items()}
        limit = _int(fields.get("x-ratelimit-limit"))
        if limit is None or limit <= 0:
            # Once a server has limited us, a response without headers (a proxy's 502, say)
            # does not mean it stopped; only a server that never sent them is taken as unlimited.
            if self._limited is None:
                self._limited = False
            return
        self._limited = True
        self._limit = limit
        now = self._clock()
        self._max_round_trip_s = max(self._max_round_trip_s, now - sent_at)
        remaining = _int(fields.get("x-ratelimit-remaining"))
        reset = _float(fields.get("x-ratelimit-reset"))
        if remaining is None or reset is None or abs(reset - now) >= MAX_WINDOW_S:
            return  # no usable Reset (missing, or not epoch seconds): keep what we know
        used = max(limit - remaining, 0)
        if "retry-after" in fields:
            self._forget_refused(sent_at)
        else:
            if used == 1:
                self._phantoms.clear()  # the server holds only this request: nobody else is there
            oldest = self._oldest_counted(used, sent_at)
            if oldest is not None:
                self._learn_window(reset, oldest)
        others = self._add_phantoms(used, sent_at, reset, now)
        if others > 0 and "retry-after" not in fields:
            # Counted beyond ours while the server still took requests: another client. (A 429
            # says the window is full, not who filled it: a run killed a moment ago, say.)
            self._others_until = now + self._window_s
            self._project_others(others, reset, now)

    def pause_until(self, epoch_s: float) -> None:
        """Hold every waiter until `epoch_s` (a 429's Retry-After, or a full window's Reset)."""
        self._paused_until = max(self._paused_until, epoch_s)

    # -- the log -----------------------------------------------------------------------------

    async def _wait_for_window(self) -> None:
        while (wait := self._wait_s(self._clock())) > 0:
            await self._sleep(min(wait, MAX_NAP_S))

    def _wait_s(self, now: float) -> float:
        """Seconds until a request sent at `now` fits: the pause, and a free slot in the log."""
        self._forget(now)
        pause = self._paused_until - now
        if self._limited is False:
            return max(pause, 0.0)
        first_alive = bisect.bisect_right(self._sent, now - self._window_s)
        in_window = len(self._sent) - first_alive + len(self._phantoms)
        limit = self._our_limit()
        if in_window < limit:
            return max(pause, 0.0)
        expiries = heapq.merge(
            (sent + self._window_s for sent in itertools.islice(self._sent, first_alive, None)),
            self._phantoms,
        )
        # The log frees its first slot for us when the (in_window - limit + 1)-th entry expires.
        frees_at = next(itertools.islice(expiries, in_window - limit, None))
        return max(pause, frees_at - now, 0.0)

    def _our_limit(self) -> int:
        """The window's size for us: all of it, or less the headroom while others use the key.

        A bulk run that takes every free slot refuses a live integration sharing its key each
        time that integration sends. While responses show somebody else in the window (and for
        a window after), the headroom stays free for them (at least one slot; we keep one).
        """
        if self._headroom <= 0 or self._clock() >= self._others_until:
            return self._limit
        spare = max(1, math.ceil(self._limit * self._headroom))
        still_to_come = max(0, self._others_per_window - len(self._phantoms))
        return max(1, self._limit - spare - still_to_come)

    def _project_others(self, others: int, reset: float, now: float) -> None:
        """How many requests the other client will hold in a full window, at its pace.

        Met mid-stream, the window shows only the part of the other client's traffic sent
        since its oldest counted request, which `Reset` dates. A steady integration keeps
        sending while none of its requests leaves yet: reserve what its pace will add, or the
        window fills and it is refused. (When that oldest request may be ours, the age says
        nothing about theirs: keep the last projection.)
        """
        first_alive = bisect.bisect_left(self._sent, now - self._window_s)
        if self._ours_may_leave_at(reset, first_alive):
            return
        age_s = self._window_s - (reset - now)
        if age_s <= 1.0:
            return  # too young to tell a pace
        projected = math.ceil(others * self._window_s / age_s)
        self._others_per_window = min(projected, self._limit - 1)

    def _forget(self, now: float) -> None:
        del self._sent[: bisect.bisect_right(self._sent, now - 2 * self._window_s)]
        del self._phantoms[: bisect.bisect_right(self._phantoms, now)]

    def _forget_refused(self, sent_at: float) -> None:
        """Take a refused (429) request out of the log: it took no slot on the server.

        The docs say 429s are not counted. A server that does count them shows it in the next
        `Remaining`, and phantom entries make up the difference; keeping refused requests in
        the log instead would stall us for a whole window after a burst of 429s.
        Our entry is the last one at or before `sent_at`: the client reads the clock for
        `sent_at` right after `acquire()` returns, with no other task in between.
        """
        index = bisect.bisect_right(self._sent, sent_at) - 1
        if index >= 0:
            del self._sent[index]

    def _oldest_counted(self, used: int, sent_at: float) -> float | None:
        """When we sent the oldest request the server counted on answering ours, if we know.

        With nobody else on the key, the server's window holds our last `used` requests up to
        this one, and `Reset` is when the oldest of them leaves. Every response then bounds the
        window, not only one the server held alone: their send times fall on every fraction of
        a second, so the whole-second rounding of `Reset` averages out within a few responses.
        With others on the key (phantom entries) that request is not ours: learn nothing.
        """
        if self._phantoms or used < 1:
            return None
        ours = bisect.bisect_right(self._sent, sent_at)
        return self._sent[ours - used] if used <= ours else None

    def _learn_window(self, reset: float, sent_at: float) -> None:
        """Narrow the window from the oldest request the server counted, sent at `sent_at`:
        it leaves in (reset - 1, reset]."""
        upper = reset - sent_at
        if upper <= 0:
            return  # a clock far ahead of the server's; keep what we have
        lower = upper - 1.0
        if self._window_bounds is not None:
            lower = max(lower, self._window_bounds[0])
            upper = min(upper, self._window_bounds[1])
        self._window_bounds = (lower, upper)
        self._window_s = self._likeliest_window(lower, upper) + WINDOW_MARGIN_S

    def _likeliest_window(self, lower: float, upper: float) -> float:
        """Window + latency: the documented 60 s plus the slowest round trip, if the bounds
        allow it (a request reaches the server within one round trip), else the upper bound.

        The bounds alone narrow slowly while requests bunch at the start of a window (they all
        see the same oldest request), and `Reset`'s whole seconds leave up to 1 s of slack.
        """
        documented = DEFAULT_WINDOW_S + self._max_round_trip_s
        return documented if lower < documented <= upper else max(lower, upper)

    def _add_phantoms(self, used: int, sent_at: float, reset: float, now: float) -> int:
        """Make the log count at least what the server counted when this request arrived;
        return how many of those were not ours.

        Ours are the requests we sent up to and including this one, still in the window then;
        a request sent later that overtook it makes us slightly conservative, never too fast.
        """
        self._forget(now)
        start = bisect.bisect_right(self._sent, sent_at - self._window_s)
        ours = bisect.bisect_right(self._sent, sent_at) - start
        missing = used - ours - len(self._phantoms)
        if missing <= 0:
            return used - ours
        # Reset is when the oldest counted request leaves. When that may be one of ours (our
        # oldest leaves within Reset's rounding), it says nothing about the others: they leave
        # within a window of now, but when exactly nothing says. Taking one of theirs to leave
        # at Reset then would free a slot the server does not have.
        later = now + self._window_s
        first = later if self._ours_may_leave_at(reset, start) else reset
        expiries = [first, *[later] * (missing - 1)]
        self._phantoms = sorted(self._phantoms + [e for e in expiries if e > now])
        return used - ours

    def _ours_may_leave_at(self, reset: float, first_alive: int) -> bool:
        """Whether our oldest request still in the window may be the one `Reset` announces."""
        if first_alive >= len(self._sent):
            return False
        leaves = self._sent[first_alive] + self._window_s
        return reset - 1.0 - WINDOW_MARGIN_S < leaves <= reset + WINDOW_MARGIN_S


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        value = float(text.strip()) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
