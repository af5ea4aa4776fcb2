"""A plain aiohttp server that answers with the hand-written bodies of `fixtures/`, nothing else.

It knows nothing of the API's rules and shares no code with `bulk` or its sandbox: a test says
which fixture file (served byte for byte, with the given status and headers) answers which
method and path, and reads back what the client sent.

    server.route("GET", "/customers/42", Canned(200, "customer.json"))
    server.route("GET", "/customers", Canned(200, "customers_page_2.json"),
                 query={"cursor": "2026-05-26T17:21:09.414Z"})

Several answers for one route are served in turn, the last one repeating. A route with `query`
only matches requests whose query holds those pairs; the most specific match wins. Requests for
anything else get a 404 `route_not_found` envelope (written here, as the page describes it).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PREFIX = "/api/v1"
_JSON = "application/json; charset=utf-8"
_NO_ROUTE = (
    b'{"error": {"type": "not_found", "code": "route_not_found", '
    b'"message": "No route for this method and path."}}'
)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass(frozen=True)
class Canned:
    """One answer: a status, a fixture file (its exact bytes), and extra headers."""

    status: int
    fixture: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    """One request as it arrived."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class _Route:
    method: str
    path: str
    query: dict[str, str]
    answers: list[Canned]
    served: int = 0

    def next_answer(self) -> Canned:
        answer = self.answers[min(self.served, len(self.answers) - 1)]
        self.served += 1
        return answer


class ContractServer:
    """Serves `fixtures/` on a free loopback port; `base_url` ends in `/api/v1`."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.on_arrival: Callable[[Seen], None] | None = None
        """Called with each request as it arrives, before it is answered."""
        self._routes: list[_Route] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def route(
        self, method: str, path: str, *answers: Canned, query: Mapping[str, str] | None = None
    ) -> None:
        """Answer `method` `path` (relative to /api/v1) with `answers`, in turn."""
        assert answers, "a route needs at least one answer"
        self._routes.append(_Route(method.upper(), path, dict(query or {}), list(answers)))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.setblocking(False)
        await web.SockSite(self._runner, listener).start()
        self.base_url = f"http://127.0.0.1:{listener.getsockname()[1]}{PREFIX}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def requests(self, method: str, path: str) -> list[Seen]:
        return [seen for seen in self.seen if (seen.method, seen.path) == (method, path)]

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix(PREFIX)
        query = dict(request.query)
        seen = Seen(request.method, path, query, dict(request.headers), await request.read())
        self.seen.append(seen)
        if self.on_arrival is not None:
            self.on_arrival(seen)
        route = self._match(request.method, path, query)
        if route is None:
            return web.Response(status=404, body=_NO_ROUTE, headers=_headers())
        answer = route.next_answer()
        return web.Response(
            status=answer.status,
            body=fixture_bytes(answer.fixture),
            headers=_headers(answer.headers),
        )

    def _match(self, method: str, path: str, query: Mapping[str, str]) -> _Route | None:
        candidates = [
            route
            for route in self._routes
            if (route.method, route.path) == (method, path)
            and all(query.get(name) == value for name, value in route.query.items())
        ]
        return max(candidates, key=lambda route: len(route.query), default=None)


def _headers(extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"Content-Type": _JSON, **(extra or {})}
