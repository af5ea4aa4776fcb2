"""Progress on stderr: a tqdm bar per pass on a terminal, plain lines otherwise.

A bar that is not advancing (every request waits for the rate limit) must still tell the truth:
a ticker refreshes it every second, so its clock and ETA keep moving and it says what it waits
for, and without a terminal a plain line comes at least every `PLAIN_INTERVAL_S`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

PLAIN_INTERVAL_S = 10.0
TICK_S = 1.0

Status = Callable[[], str | None]
"""What the work waits for right now (`waiting for the rate limit, 45 s`), or None."""


class PassProgress:
    """Rows done out of the pass's total, with rate, ETA, failures and skips."""

    def __init__(
        self,
        name: str,
        total: int | None,
        settled: int,
        stream: TextIO | None,
        tty: bool,
        unit: str = "row",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.unit = unit
        self.total = total
        self.done = settled
        self.failed = 0
        self.skipped = 0
        self.status: str | None = None
        self.stream = stream
        self._clock = clock
        self._bar: tqdm[Any] | None = None
        self._last_line = clock()
        if stream is not None and tty:
            self._bar = tqdm(
                total=total,
                initial=settled,
                desc=name,
                unit=unit,
                file=stream,
                dynamic_ncols=True,
                leave=True,
            )

    def advance(self, count: int = 1, *, failed: bool = False, skipped: bool = False) -> None:
        self.done += count
        self.failed += count if failed else 0
        self.skipped += count if skipped else 0
        if self._bar is not None:
            self._bar.update(count)
            if failed or skipped:
                self._bar.set_postfix_str(self._postfix(), refresh=False)
        else:
            self._plain_if_due()

    def tick(self, status: str | None) -> None:
        """Called every `TICK_S`: show what the work waits for; keep the clock moving."""
        self.status = status
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.refresh()
        else:
            self._plain_if_due()

    def _postfix(self) -> str:
        parts = []
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if self.status:
            parts.append(self.status)
        return ", ".join(parts)

    def _plain_if_due(self) -> None:
        if self.stream is not None and self._clock() - self._last_line >= PLAIN_INTERVAL_S:
            self._plain_line()

    def _plain_line(self) -> None:
        assert self.stream is not None
        self._last_line = self._clock()
        of_total = f"/{self.total}" if self.total is not None else ""
        postfix = self._postfix()
        detail = f", {postfix}" if postfix else ""
        print(
            f"{self.name}: {self.done}{of_total} {self.unit}s{detail}", file=self.stream, flush=True
        )

    def __enter__(self) -> PassProgress:
        if self._bar is None and self.stream is not None:
            self._plain_line()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.status = None
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.close()
        elif self.stream is not None:
            self._plain_line()


@asynccontextmanager
async def ticking(
    bar: PassProgress, status: Status, interval_s: float = TICK_S
) -> AsyncIterator[None]:
    """Tick `bar` every `interval_s` with `status()` while the block runs."""

    async def tick_forever() -> None:
        while True:
            await asyncio.sleep(interval_s)
            bar.tick(status())

    ticker = asyncio.create_task(tick_forever())
    try:
        yield
    finally:
        ticker.cancel()
        with suppress(asyncio.CancelledError):
            await ticker


class ProgressFactory:
    """Makes one `PassProgress` per pass; `quiet` hides them all."""

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.stream = None if quiet else (stream or sys.stderr)
        self.tty = bool(self.stream is not None and self.stream.isatty())

    def for_pass(
        self, name: str, total: int | None, settled: int = 0, unit: str = "row"
    ) -> PassProgress:
        return PassProgress(name, total, settled, self.stream, self.tty, unit)

    def note(self, message: str) -> None:
        """A line for the user that does not garble a bar being drawn (stderr even if quiet)."""
        if self.tty:
            tqdm.write(message, file=self.stream)
        else:
            print(message, file=self.stream or sys.stderr, flush=True)
