"""Progress on stderr: a tqdm bar per pass on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

PLAIN_INTERVAL_S = 10.0


class PassProgress:
    """Rows done out of the pass's total, with rate, ETA and failures."""

    def __init__(
        self,
        name: str,
        total: int | None,
        settled: int,
        stream: TextIO | None,
        tty: bool,
        unit: str = "row",
    ) -> None:
        self.name = name
        self.unit = unit
        self.total = total
        self.done = settled
        self.failed = 0
        self.stream = stream
        self._bar: tqdm[Any] | None = None
        self._last_line = 0.0
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

    def advance(self, count: int = 1, *, failed: bool = False) -> None:
        self.done += count
        self.failed += failed
        if self._bar is not None:
            self._bar.update(count)
            if failed:
                self._bar.set_postfix(failed=self.failed, refresh=False)
        elif self.stream is not None and time.monotonic() - self._last_line >= PLAIN_INTERVAL_S:
            self._plain_line()

    def _plain_line(self) -> None:
        assert self.stream is not None
        self._last_line = time.monotonic()
        of_total = f"/{self.total}" if self.total is not None else ""
        failed = f", {self.failed} failed" if self.failed else ""
        print(
            f"{self.name}: {self.done}{of_total} {self.unit}s{failed}", file=self.stream, flush=True
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
        if self._bar is not None:
            self._bar.close()
        elif self.stream is not None:
            self._plain_line()


class ProgressFactory:
    """Makes one `PassProgress` per pass; `quiet` hides them all."""

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.stream = None if quiet else (stream or sys.stderr)
        self.tty = bool(self.stream is not None and self.stream.isatty())

    def for_pass(
        self, name: str, total: int | None, settled: int = 0, unit: str = "row"
    ) -> PassProgress:
        return PassProgress(name, total, settled, self.stream, self.tty, unit)
