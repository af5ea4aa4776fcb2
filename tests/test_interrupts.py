"""Signals become a stop request: told at once, polled by synchronous work, awaited by async."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from bulk.errors import RunInterrupted
from bulk.interrupts import STOPPING, StopRequest


def test_sigterm_during_synchronous_work_is_seen_at_once_and_exits_143() -> None:
    said: list[str] = []
    with StopRequest(announce=said.append) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.is_set()
        with pytest.raises(RunInterrupted) as interrupted:
            stop.check()
    assert said == [STOPPING]
    assert interrupted.value.exit_code == 143
    assert stop.exit_code == 143


def test_ctrl_c_exits_130_and_a_second_one_interrupts_synchronous_work() -> None:
    with StopRequest(announce=lambda _: None) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.exit_code == 130
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_handlers_are_restored_on_exit() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest(announce=lambda _: None):
        assert signal.getsignal(signal.SIGTERM) != before
    assert signal.getsignal(signal.SIGTERM) == before


async def test_a_waiting_coroutine_wakes_on_the_signal_and_a_second_cancels_the_run() -> None:
    async def run() -> str:
        with StopRequest(announce=lambda _: None) as stop:
            loop = asyncio.get_running_loop()
            loop.call_later(0.01, os.kill, os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(stop.wait(), 5)
            assert stop.exit_code == 143
            loop.call_later(0.01, os.kill, os.getpid(), signal.SIGINT)
            await asyncio.sleep(5)
            return "not cancelled"

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(run())
