"""Ctrl-C as a request to stop cleanly rather than an exception mid-write."""

from __future__ import annotations

import asyncio
import signal
from contextlib import suppress


class stop_on_interrupt:
    """Ctrl-C (or SIGTERM) sets `stop`: no new request starts, in-flight ones finish.

    A second Ctrl-C cancels the running task outright, for when waiting is not an option.
    """

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.installed: list[int] = []
        self.task: asyncio.Task[object] | None = None

    def __enter__(self) -> None:
        loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._interrupted)
                self.installed.append(signum)

    def _interrupted(self) -> None:
        if self.stop.is_set() and self.task is not None:
            self.task.cancel()
        self.stop.set()

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in self.installed:
            loop.remove_signal_handler(signum)
