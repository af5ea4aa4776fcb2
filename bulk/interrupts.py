"""Ctrl-C and SIGTERM as a request to stop cleanly, never an exception in the middle of a write.

The first signal sets a `StopRequest`: the user is told at once that the run is stopping, no new
request starts, requests still waiting for a rate-limit slot or a retry are dropped (they have
not started), and those in flight finish. Planning, which is synchronous, polls it between rows.
A second signal cancels the run outright. The exit code tells which signal it was: 130 for
SIGINT, 143 for SIGTERM (what cron, systemd and containers send).

Handlers are installed with `signal.signal` rather than the event loop's `add_signal_handler`,
so that they run during synchronous work too (planning a large file), not only when the loop
gets control back.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from contextlib import suppress
from types import FrameType, TracebackType
from typing import Any

from bulk.errors import RunInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOPPING = (
    "Stopping: no new requests; those in flight finish, then the checkpoint is saved. "
    "Press Ctrl-C again to stop at once."
)


def exit_code_for(signum: int) -> int:
    """128 + the signal's number, as shells report a process ended by it (130, 143)."""
    return 128 + signum


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class StopRequest:
    """Set by the first SIGINT or SIGTERM while installed (a context manager)."""

    def __init__(self, announce: Callable[[str], None] = _to_stderr) -> None:
        self.announce = announce
        self.signum: int | None = None
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._previous: dict[int, Any] = {}

    # -- what callers ask --------------------------------------------------------------------

    def is_set(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.signum or signal.SIGINT)

    async def wait(self) -> None:
        await self._event.wait()

    def check(self) -> None:
        """Raise `RunInterrupted` if a stop was asked for (for loops of synchronous work)."""
        if self.signum is not None:
            raise RunInterrupted(self.exit_code)

    def set(self, signum: int = signal.SIGINT) -> None:
        """Ask for a stop as a signal would (tests and embedding programs call this)."""
        if self.signum is None:
            self.signum = signum
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._event.set)
        else:
            self._event.set()

    # -- installation ------------------------------------------------------------------------

    def __enter__(self) -> StopRequest:
        with suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
        for signum in SIGNALS:
            with suppress(ValueError):  # not the main thread: signals stay as they were
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self._hard_stop()
            return
        self.set(signum)
        with suppress(Exception):  # a closed stderr must not turn a stop into a crash
            self.announce(STOPPING)

    def _hard_stop(self) -> None:
        """A second signal: cancel the run (async) or interrupt the synchronous work."""
        if self._task is not None and self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._task.cancel)
            return
        raise KeyboardInterrupt
