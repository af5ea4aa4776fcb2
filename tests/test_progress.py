"""Progress that tells the truth while nothing advances: waits shown, plain lines on a timer."""

from __future__ import annotations

import asyncio
import io

from bulk.progress import PLAIN_INTERVAL_S, PassProgress, ticking


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plain(stream: io.StringIO, clock: FakeClock, total: int = 3000) -> PassProgress:
    return PassProgress("customers", total, 596, stream, tty=False, clock=clock)


def test_a_plain_line_comes_every_ten_seconds_during_a_rate_limit_wait() -> None:
    stream, clock = io.StringIO(), FakeClock()
    with plain(stream, clock) as bar:
        for _ in range(60):  # one minute of ticks, not one row advancing
            clock.now += 1
            bar.tick("waiting for the rate limit, 45 s")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "customers: 596/3000 rows"
    assert lines[1:7] == ["customers: 596/3000 rows, waiting for the rate limit, 45 s"] * 6
    assert lines[-1] == "customers: 596/3000 rows"
    assert len(lines) == 2 + 60 // int(PLAIN_INTERVAL_S)


def test_skipped_rows_are_counted_apart_from_failed_ones() -> None:
    stream, clock = io.StringIO(), FakeClock()
    with plain(stream, clock, total=10) as bar:
        bar.advance(failed=True)
        bar.advance(skipped=True)
        bar.advance(skipped=True)
        bar.advance()
    assert (bar.failed, bar.skipped, bar.done) == (1, 2, 600)
    assert stream.getvalue().splitlines()[-1] == "customers: 600/10 rows, 1 failed, 2 skipped"


def test_a_bar_shows_the_wait_and_keeps_its_clock_moving() -> None:
    stream = io.StringIO()
    bar = PassProgress("contacts", 100, 0, stream, tty=True)
    bar.tick("waiting for the rate limit, 12 s")
    assert "waiting for the rate limit, 12 s" in stream.getvalue().split("\r")[-1]
    bar.tick(None)
    assert "waiting" not in stream.getvalue().split("\r")[-1]
    bar.__exit__(None, None, None)


async def test_the_ticker_asks_for_the_status_while_the_block_runs() -> None:
    stream, clock = io.StringIO(), FakeClock()
    bar = plain(stream, clock)
    asked: list[int] = []

    def status() -> str:
        asked.append(1)
        return "waiting for the rate limit, 3 s"

    async with ticking(bar, status, interval_s=0.01):
        await asyncio.sleep(0.1)
    count = len(asked)
    await asyncio.sleep(0.05)
    assert count >= 3 and len(asked) == count  # it stopped with the block
    assert bar.status == "waiting for the rate limit, 3 s"
