"""The event loop the command line runs on: uvloop where it is installed, else asyncio's own.

An unthrottled import is bound by the client's CPU (aiohttp and the loop take half of it);
uvloop's loop and transports took 3 % off the client's CPU and 4 % off the wall time of 20,000
customers and 20,000 contacts (`benchmarks/rate_limits.py unthrottled`). It is not built for
Windows, where asyncio's loop serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_to_end(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the fastest loop this platform has."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
