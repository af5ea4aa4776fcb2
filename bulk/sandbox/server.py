"""Starting and stopping the sandbox: in the running loop, in a thread, or in the foreground."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .app import API_PREFIX, SandboxApp, SandboxStats
from .config import SandboxConfig
from .store import Store

EXAMPLE_KEY = "pivotal_sandbox"


@dataclass
class Sandbox:
    """A running sandbox: where it listens, what it has seen, and how to stop it."""

    base_url: str
    stats: SandboxStats
    _app: SandboxApp
    _runner: web.AppRunner
    _store: Store

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1].split("/", 1)[0])

    def objects(self, workspace: str, object_name: str) -> list[dict[str, Any]]:
        """Every live object of a type in a workspace, oldest first, straight from the store.

        For tests and demos; call it while no request is being served.
        """
        return self._store.live_bodies(workspace, object_name)

    def revoke_key(self, key: str) -> None:
        self._app.revoked_keys.add(key)

    async def stop(self) -> None:
        await self._runner.cleanup()
        self._store.close()


async def start_sandbox(config: SandboxConfig) -> Sandbox:
    """Serve the API on `config.host`:`config.port` (0: a free port) in the running loop."""
    store = Store(config.db_path)
    sandbox_app = SandboxApp(config, store)
    runner = web.AppRunner(sandbox_app.build(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        listener = _listen(config.host, config.port)
        await web.SockSite(runner, listener).start()
    except BaseException:
        await runner.cleanup()
        store.close()
        raise
    host, port = listener.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    return Sandbox(
        f"http://{shown_host}:{port}{API_PREFIX}", sandbox_app.stats, sandbox_app, runner, store
    )


@asynccontextmanager
async def running_sandbox(config: SandboxConfig) -> AsyncIterator[Sandbox]:
    sandbox = await start_sandbox(config)
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@contextmanager
def sandbox_in_thread(config: SandboxConfig) -> Iterator[Sandbox]:
    """Run a sandbox on its own event loop in a daemon thread, for synchronous callers."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bulk-sandbox", daemon=True)
    thread.start()
    sandbox = asyncio.run_coroutine_threadsafe(start_sandbox(config), loop).result(timeout=30)
    try:
        yield sandbox
    finally:
        asyncio.run_coroutine_threadsafe(sandbox.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def serve_forever(config: SandboxConfig, on_ready: Callable[[Sandbox], None]) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then stop cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with running_sandbox(config) as sandbox:
            on_ready(sandbox)
            await stop.wait()

    asyncio.run(main())


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    listener.listen(512)
    listener.setblocking(False)
    return listener
