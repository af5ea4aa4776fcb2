"""Injected failures: a share of requests answer 500 or lose their connection.

Half of the failures strike *after* the request took effect (the write committed, then the
client saw an error or nothing at all): the case that makes careless clients create duplicates.
"""

from __future__ import annotations

import random
from enum import Enum


class Fault(Enum):
    NONE = "none"
    ERROR_BEFORE = "error_before"
    DROP_BEFORE = "drop_before"
    ERROR_AFTER = "error_after"
    DROP_AFTER = "drop_after"

    @property
    def before_work(self) -> bool:
        return self in (Fault.ERROR_BEFORE, Fault.DROP_BEFORE)

    @property
    def after_work(self) -> bool:
        return self in (Fault.ERROR_AFTER, Fault.DROP_AFTER)

    @property
    def drops_connection(self) -> bool:
        return self in (Fault.DROP_BEFORE, Fault.DROP_AFTER)


_FAILURES = (Fault.ERROR_BEFORE, Fault.DROP_BEFORE, Fault.ERROR_AFTER, Fault.DROP_AFTER)


class FaultInjector:
    """Draws a fault for each request: `rate` of them fail, evenly across the four kinds."""

    def __init__(self, rate: float, seed: int | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        self.rate = rate
        self._random = random.Random(seed)

    def draw(self) -> Fault:
        if self.rate == 0.0 or self._random.random() >= self.rate:
            return Fault.NONE
        return self._random.choice(_FAILURES)
