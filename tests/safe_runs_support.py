"""Shared pieces of the issue-8 tests (`test_safe_runs*.py`): the CLI in-process and as a
subprocess, small source files, and tiny aiohttp servers on loopback (a proxy in front of a
sandbox that can hold or break chosen requests, a server that answers HTML)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from click.testing import CliRunner, Result

from bulk.cli import main
from bulk.sandbox import Sandbox

KEY = "pivotal_acme"
TEST_KEY = "pivotal_test_acme"
"""Same workspace as KEY, its own rate-limit bucket: a resume that is not held back."""


def bulk(*arguments: str) -> Result:
    """`bulk ARGUMENTS` in-process. An exception escaping the CLI is what a user sees as a
    traceback, so it fails the test with that traceback instead of being hidden."""
    result = CliRunner().invoke(main, list(arguments), catch_exceptions=True)
    escaped = result.exception
    if escaped is not None and not isinstance(escaped, SystemExit):
        frame = traceback.extract_tb(escaped.__traceback__)[-1]
        raise AssertionError(
            f"a traceback escaped the CLI: {type(escaped).__name__}: {escaped} "
            f"(at {Path(frame.filename).name}:{frame.lineno})"
        )
    return result


def connection(sandbox: Sandbox, key: str = KEY) -> list[str]:
    return ["--base-url", sandbox.base_url, "--api-key", key]


def import_customers(source: Path, checkpoint: Path, *options: str) -> Result:
    """`bulk import --customers SOURCE --checkpoint CHECKPOINT --quiet OPTIONS` in-process."""
    return bulk(
        "import", "--customers", str(source), *options, "--checkpoint", str(checkpoint), "--quiet"
    )


def assert_one_line_error(result_stderr: str) -> str:
    """stderr is exactly one `Error: …` line, without a traceback; returns it."""
    assert "Traceback" not in result_stderr, result_stderr
    lines = [line for line in result_stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, result_stderr
    return errors[0]


def write_customers(path: Path, count: int, prefix: str = "K") -> Path:
    lines = ["external_id,name,plan"]
    lines += [f"{prefix}{n},Customer {prefix}{n},gold" for n in range(1, count + 1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- subprocesses ----------------------------------------------------------------------------


def start_bulk(*arguments: str, cwd: Path, key: str | None = KEY) -> subprocess.Popen[bytes]:
    """`python -m bulk ARGUMENTS` in a subprocess (the key through PIVOTAL_API_KEY)."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop("BULK_DEBUG", None)
    if key is not None:
        environment["PIVOTAL_API_KEY"] = key
    return subprocess.Popen(
        [sys.executable, "-m", "bulk", *arguments],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float


def finish(process: subprocess.Popen[bytes], within_s: float, what: str) -> Finished:
    """Wait at most `within_s` for the process; a slower one is killed and fails the test."""
    started = time.monotonic()
    try:
        stdout, stderr = process.communicate(timeout=within_s)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate(timeout=30)
        raise AssertionError(
            f"{what}: still running after {within_s} s (killed). stderr: {stderr.decode()!r}"
        ) from None
    return Finished(
        process.returncode, stdout.decode(), stderr.decode(), time.monotonic() - started
    )


AT_ONCE_MARGIN_S = 2.0
"""What "at once" allows beyond the start-up of a run that refuses straight away: far less
than the waits it rules out (a 5 s busy timeout, 17 s of retries)."""


def start_up_s(cwd: Path) -> float:
    """How long `bulk import` takes on this machine right now to start, load its modules and
    refuse a missing file: the floor under any run that exits at once (a loaded machine
    starts an interpreter slower, so a fixed bound would fail there)."""
    process = start_bulk("import", "--customers", "no-such-file.csv", "--quiet", cwd=cwd)
    refused = finish(process, within_s=60, what="a run refusing a missing file")
    assert refused.returncode == 2, refused.stderr
    return refused.elapsed_s


def assert_at_once(done: Finished, cwd: Path) -> None:
    """`done` exited about as soon as a process can: no wait, no retry."""
    floor = start_up_s(cwd)
    assert done.elapsed_s < floor + AT_ONCE_MARGIN_S, (done.elapsed_s, floor)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class StderrLines:
    """Reads a subprocess's stderr in a thread, keeping each line with when it arrived."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        self._stream = process.stderr
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for raw in iter(self._stream.readline, b""):
            self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def join(self, timeout_s: float = 10.0) -> None:
        self._thread.join(timeout=timeout_s)


# -- tiny servers on loopback ----------------------------------------------------------------


@dataclass
class Served:
    base_url: str
    """Ends in /api/v1."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(method, path) of every request received."""


@contextmanager
def serve(build: Callable[[Served], web.Application]) -> Iterator[Served]:
    """Run the application `build(served)` on a free loopback port in its own thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    served = Served("")

    async def start() -> web.AppRunner:
        runner = web.AppRunner(build(served), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        served.base_url = f"http://127.0.0.1:{port}/api/v1"
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield served
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def html_app(served: Served) -> web.Application:
    """A web site, not the API: 200 with an HTML page for every path."""

    async def page(request: web.Request) -> web.Response:
        served.requests.append((request.method, request.path))
        return web.Response(
            text="<!doctype html><html><body>Welcome</body></html>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    return app


@dataclass
class ProxyRules:
    """What the proxy does to requests whose body contains these bytes."""

    poison: bytes | None = None
    """Answer 500 (the API's internal_error)."""
    drop: bytes | None = None
    """Close the connection without an answer."""
    hold_writes: threading.Event | None = None
    """While set to a cleared event, POST/PATCH wait (in flight) until it is set."""


def proxy_app(upstream: Sandbox, rules: ProxyRules) -> Callable[[Served], web.Application]:
    """Forward everything to `upstream`, except what `rules` break or hold."""

    def build(served: Served) -> web.Application:
        session: dict[str, aiohttp.ClientSession] = {}

        async def forward(request: web.Request) -> web.StreamResponse:
            served.requests.append((request.method, request.path))
            body = await request.read()
            if rules.drop is not None and rules.drop in body and request.transport is not None:
                request.transport.close()
                return web.Response(status=500)
            if rules.poison is not None and rules.poison in body:
                return web.json_response(
                    {
                        "error": {
                            "type": "internal_error",
                            "code": "internal_error",
                            "message": "poisoned on purpose",
                        }
                    },
                    status=500,
                )
            if rules.hold_writes is not None and request.method in ("POST", "PATCH"):
                while not rules.hold_writes.is_set():
                    await asyncio.sleep(0.01)
            if "http" not in session:
                session["http"] = aiohttp.ClientSession()
            upstream_root = upstream.base_url.removesuffix("/api/v1")
            headers = {
                k: v
                for k, v in request.headers.items()
                if k.lower() not in ("host", "content-length")
            }
            async with session["http"].request(
                request.method, upstream_root + request.path_qs, data=body, headers=headers
            ) as answer:
                raw = await answer.read()
                kept = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower()
                    not in ("content-length", "transfer-encoding", "content-encoding", "connection")
                }
                return web.Response(status=answer.status, body=raw, headers=kept)

        async def close(app: web.Application) -> None:
            if "http" in session:
                await session["http"].close()

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        app.on_cleanup.append(close)
        return app

    return build
