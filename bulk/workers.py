"""A pass's workers: `count` copies of one coroutine sharing an iterator of rows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def run_workers(count: int, work: Callable[[], Awaitable[None]]) -> None:
    """Run `count` copies of `work()` at once until all return; when one raises, the others
    are cancelled (and awaited) before the error goes on, so no request is left half-handled."""
    workers = [asyncio.ensure_future(work()) for _ in range(count)]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
