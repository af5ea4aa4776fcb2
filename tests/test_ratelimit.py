"""The rate governor on a fake clock: every wait is asserted, nothing sleeps (but the ceiling)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bulk.api.ratelimit import DEFAULT_LIMIT, DEFAULT_WINDOW_S, WINDOW_MARGIN_S, RateGovernor

T0 = 1_780_000_000.0


class FakeTime:
    """A clock that moves only when the governor sleeps (or a test says so)."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def governor(fake: FakeTime) -> RateGovernor:
    return RateGovernor(clock=fake.clock, sleep=fake.sleep)


@pytest.fixture
def greedy(fake: FakeTime) -> RateGovernor:
    """A governor that keeps no headroom for others on the key (`--headroom 0`)."""
    return RateGovernor(headroom_percent=0, clock=fake.clock, sleep=fake.sleep)


def headers(limit: int, remaining: int, reset: float, **extra: str) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
        **extra,
    }


async def send(governor: RateGovernor, fake: FakeTime) -> float:
    """Acquire a slot and return the time we were let through."""
    await governor.acquire()
    return fake.now


async def learn(governor: RateGovernor, fake: FakeTime, limit: int, window: float) -> None:
    """One request on an empty server window: the response teaches limit and window."""
    sent_at = await send(governor, fake)
    governor.observe(headers(limit, limit - 1, sent_at + window - WINDOW_MARGIN_S), sent_at)
    assert governor.window_s == window


async def test_bursts_up_to_the_limit_then_waits_exactly_until_the_oldest_leaves(
    governor: RateGovernor, fake: FakeTime
) -> None:
    await learn(governor, fake, limit=5, window=10.0)
    assert (governor.limit, governor.window_s) == (5, 10.0)
    for _ in range(4):
        fake.now += 1.0
        assert await send(governor, fake) == fake.now  # no wait while the window has room
    assert fake.slept == []
    assert await send(governor, fake) == T0 + 10.0  # the first request leaves the window
    assert await send(governor, fake) == T0 + 11.0  # then the second, sent one second later
    assert sum(fake.slept) == pytest.approx(11.0 - 4.0)
    assert all(nap <= 1.0 for nap in fake.slept)  # re-checks at least every second


async def test_assumes_sixty_per_documented_window_until_told(
    governor: RateGovernor, fake: FakeTime
) -> None:
    assert (governor.limit, governor.window_s) == (DEFAULT_LIMIT, DEFAULT_WINDOW_S)
    for _ in range(DEFAULT_LIMIT):
        await governor.acquire()
    assert fake.now == T0
    assert await send(governor, fake) == T0 + DEFAULT_WINDOW_S


async def test_learns_the_limit_from_headers(governor: RateGovernor, fake: FakeTime) -> None:
    await learn(governor, fake, limit=600, window=60.0)
    assert governor.limit == 600
    for _ in range(599):
        await governor.acquire()
    assert fake.now == T0
    assert await send(governor, fake) == T0 + 60.0


async def test_window_is_measured_from_reset_within_its_rounding(
    governor: RateGovernor, fake: FakeTime
) -> None:
    """A 2 s window: Reset rounds up, so each lone request bounds window + latency."""
    fake.now = T0 + 0.6
    sent_at = await send(governor, fake)
    governor.observe(headers(10, 9, T0 + 3.0), sent_at)  # at most 2.4 s, more than 1.4 s
    assert governor.window_s == pytest.approx(2.4 + WINDOW_MARGIN_S)  # replaces the default 60 s
    fake.now = T0 + 100.0  # sent on a whole second (after a pause until a Reset, say)
    sent_at = await send(governor, fake)
    governor.observe(headers(10, 9, T0 + 103.0), sent_at)  # at most 3 s: says nothing new
    assert governor.window_s == pytest.approx(2.4 + WINDOW_MARGIN_S)
    fake.now = T0 + 200.1
    sent_at = await send(governor, fake)
    governor.observe(headers(10, 9, T0 + 203.0), sent_at)  # the tightest bound yet: 2.9 s max
    assert governor.window_s == pytest.approx(2.4 + WINDOW_MARGIN_S)
    fake.now = T0 + 300.1
    sent_at = await send(governor, fake)
    governor.observe(headers(10, 9, T0 + 304.0), sent_at)  # slower now: more than 2.9 s
    assert governor.window_s == pytest.approx(2.9 + WINDOW_MARGIN_S)  # evidence of more wins


async def test_no_headers_means_no_window_throttling(
    governor: RateGovernor, fake: FakeTime
) -> None:
    sent_at = await send(governor, fake)
    governor.observe({"Content-Type": "application/json"}, sent_at)
    assert governor.limit is None
    for _ in range(500):
        await governor.acquire()
    assert fake.now == T0


async def test_a_headerless_answer_after_limited_ones_does_not_lift_the_limit(
    governor: RateGovernor, fake: FakeTime
) -> None:
    await learn(governor, fake, limit=5, window=10.0)
    governor.observe({}, fake.now)  # a proxy's 502, say
    assert governor.limit == 5


async def test_server_counting_more_than_us_adds_phantoms(
    greedy: RateGovernor, fake: FakeTime
) -> None:
    governor = greedy
    await learn(governor, fake, limit=10, window=10.0)
    fake.now += 1.0
    sent_at = await send(governor, fake)
    # Another client on the key: the server counts 8 where we sent 2.
    governor.observe(headers(10, 2, T0 + 4.0), sent_at)
    await governor.acquire()
    await governor.acquire()
    assert fake.now == T0 + 1.0  # the two slots the server has left
    # The next slot is the oldest phantom's, at Reset; the other phantoms stay a full window,
    # since Reset only tells when the *oldest* request leaves.
    assert await send(governor, fake) == T0 + 4.0
    assert await send(governor, fake) == T0 + 10.0  # then our own first request leaves


async def test_remaining_zero_holds_until_reset_when_others_fill_the_window(
    greedy: RateGovernor, fake: FakeTime
) -> None:
    governor = greedy
    await learn(governor, fake, limit=10, window=10.0)
    sent_at = await send(governor, fake)
    governor.observe(headers(10, 0, T0 + 6.0), sent_at)
    assert await send(governor, fake) == T0 + 6.0  # the oldest of the others leaves at Reset


async def test_remaining_zero_on_our_own_full_window_waits_for_our_oldest_not_a_whole_second(
    governor: RateGovernor, fake: FakeTime
) -> None:
    fake.now = T0 + 0.3
    await learn(governor, fake, limit=3, window=10.0)  # our first request leaves at T0 + 10.3
    await send(governor, fake)
    sent_at = await send(governor, fake)
    governor.observe(headers(3, 0, T0 + 11.0), sent_at)  # Reset is the same, rounded up
    assert governor.paused_until == 0.0
    assert await send(governor, fake) == pytest.approx(T0 + 10.3)


async def test_the_documented_window_plus_a_round_trip_is_taken_when_the_bounds_allow_it(
    governor: RateGovernor, fake: FakeTime
) -> None:
    fake.now = T0 + 0.2
    sent_at = await send(governor, fake)
    fake.now += 0.05  # the answer came 50 ms later
    governor.observe(headers(60, 59, T0 + 61.0), sent_at)  # 59.8 s < window + latency <= 60.8 s
    assert governor.window_s == pytest.approx(60.05 + WINDOW_MARGIN_S)


async def test_every_response_narrows_the_window_not_only_a_lone_one(
    governor: RateGovernor, fake: FakeTime
) -> None:
    """A 5 s window: the server's oldest is our `used`-th most recent request."""
    sends = []
    for offset in (0.1, 0.4, 0.7, 0.95):
        fake.now = T0 + offset
        sends.append(await send(governor, fake))
    governor.observe(headers(10, 9, T0 + 6.0), sends[0])  # lone: (5.1, 5.9]
    assert governor.window_s == pytest.approx(5.9 + WINDOW_MARGIN_S)
    fake.now = T0 + 1.0
    governor.observe(headers(10, 6, T0 + 6.0), sends[3])  # 4 counted, oldest sent at 0.1
    assert governor.window_s == pytest.approx(5.9 + WINDOW_MARGIN_S)
    fake.now = T0 + 5.5  # the first two have left; the oldest counted is the one sent at 0.7
    last = await send(governor, fake)
    governor.observe(headers(10, 7, T0 + 6.0), last)  # (4.3, 5.3]: the tightest upper yet
    assert governor.window_s == pytest.approx(5.3 + WINDOW_MARGIN_S)


async def test_pause_until_holds_every_waiter(governor: RateGovernor, fake: FakeTime) -> None:
    await learn(governor, fake, limit=100, window=10.0)
    governor.pause_until(T0 + 7.0)
    governor.pause_until(T0 + 3.0)  # an earlier pause does not shorten a later one
    assert await send(governor, fake) == T0 + 7.0
    assert await send(governor, fake) == T0 + 7.0


async def test_pause_until_applies_even_without_server_limits(
    governor: RateGovernor, fake: FakeTime
) -> None:
    governor.observe({}, fake.now)
    governor.pause_until(T0 + 2.0)
    assert await send(governor, fake) == T0 + 2.0


async def test_a_refused_request_gives_its_slot_back(
    governor: RateGovernor, fake: FakeTime
) -> None:
    await learn(governor, fake, limit=2, window=10.0)
    sent_at = await send(governor, fake)
    governor.observe(headers(2, 0, T0 + 5.0, **{"Retry-After": "5"}), sent_at)
    # The server holds 2: our first and another client's, which leaves at Reset. The refused
    # request is not among them, so one slot frees at Reset (not when our first one leaves).
    assert await send(governor, fake) == T0 + 5.0


async def test_nonsense_reset_is_ignored(governor: RateGovernor, fake: FakeTime) -> None:
    sent_at = await send(governor, fake)
    governor.observe(headers(5, 0, (T0 + 10) * 1000), sent_at)  # milliseconds, not seconds
    governor.observe(headers(5, 0, float("nan")), sent_at)
    governor.observe({"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "x"}, sent_at)
    assert governor.paused_until == 0.0
    assert (governor.limit, governor.window_s) == (5, DEFAULT_WINDOW_S)


async def test_user_ceiling_spaces_requests_evenly() -> None:
    governor = RateGovernor(ceiling_per_min=1200)  # one every 50 ms, real time
    loop = asyncio.get_running_loop()
    governor.observe({}, 0.0)  # a server without limits: only the ceiling applies
    times = []
    for _ in range(5):
        await governor.acquire()
        times.append(loop.time())
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 0.045 for gap in gaps), gaps
    assert times[-1] - times[0] < 0.5


async def test_user_ceiling_does_not_burst_under_concurrency() -> None:
    governor = RateGovernor(ceiling_per_min=1200)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one() -> float:
        await governor.acquire()
        return loop.time() - start

    times = sorted(await asyncio.gather(*(one() for _ in range(4))))
    assert times[0] < 0.03
    assert times[1] >= 0.045 and times[3] >= 0.145


async def test_a_headroom_stays_free_while_another_client_uses_the_key(
    governor: RateGovernor, fake: FakeTime
) -> None:
    await learn(governor, fake, limit=20, window=10.0)
    fake.now += 1.0
    sent_at = await send(governor, fake)
    # 6 counted, 2 ours: 4 others, the oldest sent 7 s ago (it leaves at Reset, T0 + 4): at
    # that pace they will hold 6 in a full window. 20 - 2 (10 % headroom) - 2 (still to come
    # from them) = 16 for the window: 4 others, 2 + 10 ours.
    governor.observe(headers(20, 14, T0 + 4.0), sent_at)
    for _ in range(10):
        await governor.acquire()
    assert fake.now == T0 + 1.0
    # Their oldest leaving at T0 + 4 frees a slot for their next one, not for us: the next
    # slot that is ours comes when our own first request leaves.
    assert await send(governor, fake) == T0 + 10.0


async def test_without_others_on_the_key_the_whole_window_is_ours(
    governor: RateGovernor, fake: FakeTime
) -> None:
    await learn(governor, fake, limit=20, window=10.0)
    for _ in range(19):
        await governor.acquire()
    assert fake.now == T0


async def test_a_reset_that_is_our_own_oldest_frees_no_slot_of_the_others(
    greedy: RateGovernor, fake: FakeTime
) -> None:
    governor = greedy
    fake.now = T0 + 0.5
    await learn(governor, fake, limit=5, window=10.0)  # ours leaves at T0 + 10.5
    fake.now = T0 + 1.0
    sent_at = await send(governor, fake)
    # 5 counted, 2 ours: 3 others. Reset (T0 + 11, rounded up) is our first request's.
    governor.observe(headers(5, 0, T0 + 11.0), sent_at)
    assert await send(governor, fake) == pytest.approx(T0 + 10.5)  # our first leaves
    assert await send(governor, fake) == pytest.approx(T0 + 11.0)  # our second
    # the others leave a window after we saw them, not at Reset
    assert await send(governor, fake) == pytest.approx(T0 + 1.0 + governor.window_s)
