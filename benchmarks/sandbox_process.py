"""A `bulk sandbox` in its own process, for benchmarks: the server and the client each get a
core, as they would against the real API. Loopback only."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0
LISTEN_PREFIX = "Pivotal sandbox listening on "


@dataclass(frozen=True)
class Server:
    """A sandbox process and the base URL it announced."""

    process: subprocess.Popen[str]
    base_url: str


def start_server(*options: str) -> Server:
    """Start `bulk sandbox --port 0 OPTIONS...` on loopback and wait for its announcement."""
    command = [
        sys.executable,
        "-m",
        "bulk",
        "sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *options,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    line = _read_line(process, STARTUP_TIMEOUT_S)
    if not line.startswith(LISTEN_PREFIX):
        stop_server(process)
        raise RuntimeError(f"unexpected sandbox output: {line!r}")
    return Server(process, line.removeprefix(LISTEN_PREFIX).strip().rstrip("/"))


def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    """The process's first line of output, or an error if it exits or stays silent."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            stop_server(process)
            raise RuntimeError(f"sandbox printed nothing within {timeout_s:.0f} s")
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"sandbox exited with code {process.wait()} before listening")
    return line


def stop_server(process: subprocess.Popen[str]) -> None:
    """SIGINT, then wait; kill if it does not stop in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def running_server(*options: str) -> Iterator[Server]:
    server = start_server(*options)
    try:
        yield server
    finally:
        stop_server(server.process)
