"""The client against a real sandbox on loopback: success, errors, faults, rate limits."""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulk.api.client import PivotalClient
from bulk.api.retry import RetryPolicy
from bulk.errors import (
    ApiStatusError,
    AuthenticationError,
    NoResponseError,
    NotTheApiError,
    RequestAbandoned,
    ServerError,
)
from bulk.interrupts import StopRequest
from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox
from bulk.settings import ConnectionNames

KEY = "pivotal_acme"
JSON = "application/json"
FAST_RETRY = RetryPolicy(max_attempts=12, base_s=0.005, cap_s=0.05)


def client_for(sandbox: Sandbox | str, key: str = KEY, **options: Any) -> PivotalClient:
    base_url = sandbox if isinstance(sandbox, str) else sandbox.base_url
    return PivotalClient(base_url, key, **options)


def ticking_clock() -> Callable[[], float]:
    """Wall time plus one millisecond per read: every object gets its own `created_at`."""
    start = time.time()
    ticks = itertools.count()
    return lambda: start + next(ticks) / 1000


# -- success ---------------------------------------------------------------------------------


async def test_create_then_get_a_customer(sandbox: Sandbox) -> None:
    async with client_for(sandbox) as client:
        created = await client.request(
            "POST", "customers", json={"name": "Acme Corp", "tags": ["a"]}, idempotency_key="k1"
        )
        fetched = await client.request("GET", f"customers/{created.body['id']}")
        by_display_id = await client.request("GET", f"/customers/{created.body['display_id']}")
    assert (created.status, fetched.status) == (201, 200)
    assert created.body["slug"] == "acme-corp"
    assert fetched.body == created.body == by_display_id.body
    assert (created.attempts, created.replayed) == (1, False)
    assert client.stats.requests == 3 and client.stats.retries == 0


async def test_every_2xx_is_success_and_a_replay_is_flagged(sandbox: Sandbox) -> None:
    async with client_for(sandbox.base_url + "/") as client:  # a trailing slash is fine
        body = {"name": "Globex"}
        first = await client.request("POST", "/customers", json=body, idempotency_key="same")
        again = await client.request("POST", "customers", json=body, idempotency_key="same")
        patched = await client.request("PATCH", f"customers/{first.body['id']}", json={"mrr": 5})
        deleted = await client.request("DELETE", f"customers/{first.body['id']}")
    assert (first.status, again.status, patched.status, deleted.status) == (201, 201, 200, 200)
    assert again.replayed and again.body == first.body
    assert patched.body["mrr"] == 5 and deleted.body["deleted"] is True


async def test_me(sandbox: Sandbox) -> None:
    async with client_for(sandbox) as client:
        me = await client.me()
    assert me["organization"]["slug"] == "acme"


async def test_iterate_walks_every_page() -> None:
    config = SandboxConfig(rate_limit=0, clock=ticking_clock())
    async with running_sandbox(config) as sandbox, client_for(sandbox) as client:
        await asyncio.gather(
            *(client.request("POST", "customers", json={"name": f"c{n}"}) for n in range(250))
        )
        before = client.stats.requests
        seen = [customer["id"] async for customer in client.iterate("customers", page_size=100)]
        assert client.stats.requests - before == 3
        some = [c async for c in client.iterate("customers", {"status": "active"})]
    assert len(seen) == len(set(seen)) == 250
    assert some == []


# -- errors ----------------------------------------------------------------------------------


async def test_conflict_raises_with_code_and_field(sandbox: Sandbox) -> None:
    async with client_for(sandbox) as client:
        await client.request("POST", "customers", json={"name": "Initech", "slug": "initech"})
        with pytest.raises(ApiStatusError) as raised:
            await client.request("POST", "customers", json={"name": "Other", "slug": "initech"})
    error = raised.value
    assert (error.status, error.type, error.code) == (409, "conflict", "slug_taken")
    assert error.field == "slug"
    assert error.attempts == 1
    assert str(error).startswith("409 slug_taken: ")


async def test_validation_error_is_not_retried(sandbox: Sandbox) -> None:
    async with client_for(sandbox) as client:
        with pytest.raises(ApiStatusError) as raised:
            await client.request("POST", "customers", json={"name": "X", "status": "bogus"})
    assert (raised.value.status, raised.value.code, raised.value.field) == (
        400,
        "invalid_enum_value",
        "status",
    )
    assert client.stats.requests == 1


async def test_revoked_key_raises_authentication_error_without_the_key() -> None:
    secret = "pivotal_secretws"
    config = SandboxConfig(rate_limit=0, revoked_keys=frozenset({secret}))
    async with running_sandbox(config) as sandbox, client_for(sandbox, secret) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.me()
    assert raised.value.code == "api_key_revoked"
    for text in (str(raised.value), repr(raised.value), repr(client), str(client)):
        assert "secretws" not in text
    assert "pivotal_" in repr(client)


async def test_unreachable_server_raises_no_response_after_the_attempts() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, now closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = RetryPolicy(max_attempts=3, base_s=0.001, cap_s=0.005)
    async with client_for(f"http://127.0.0.1:{port}/api/v1", retry=policy) as client:
        with pytest.raises(NoResponseError) as raised:
            await client.me()
    assert raised.value.attempts == 3
    assert (client.stats.requests, client.stats.retries) == (0, 2)  # none left the machine
    assert f"127.0.0.1:{port}" in str(raised.value) and KEY not in str(raised.value)


# -- faults and exactly once -----------------------------------------------------------------


async def test_injected_faults_are_retried_and_create_nothing_twice() -> None:
    config = SandboxConfig(rate_limit=0, fault_rate=0.3, fault_seed=1234)
    async with running_sandbox(config) as sandbox, client_for(sandbox, retry=FAST_RETRY) as client:
        responses = await asyncio.gather(
            *(
                client.request(
                    "POST", "customers", json={"name": f"Row {n}"}, idempotency_key=f"row-{n}"
                )
                for n in range(60)
            )
        )
        names = [c["name"] async for c in client.iterate("customers")]
    assert {r.status for r in responses} == {201}
    assert sorted(names) == sorted(f"Row {n}" for n in range(60))
    assert client.stats.retries > 0 and sum(sandbox.stats.faults.values()) > 0
    assert any(r.replayed for r in responses)  # an answer lost after the write, then replayed


async def test_a_timed_out_create_is_replayed_not_repeated() -> None:
    """The server is still working on the first attempt: 409 in_use, then the replay."""
    config = SandboxConfig(rate_limit=0, latency_ms=300)
    policy = RetryPolicy(max_attempts=30, base_s=0.05, cap_s=0.1)
    async with (
        running_sandbox(config) as sandbox,
        client_for(sandbox, timeout_s=0.15, retry=policy) as client,
    ):
        created = await client.request(
            "POST", "customers", json={"name": "Slowpoke"}, idempotency_key="slow-1"
        )
        async with client_for(sandbox) as patient:
            everyone = [c async for c in patient.iterate("customers")]
    assert created.status == 201 and created.replayed and created.attempts >= 3
    assert [c["id"] for c in everyone] == [created.body["id"]]
    assert sandbox.stats.statuses[409] >= 1


# -- rate limits -----------------------------------------------------------------------------


async def test_stays_under_the_server_window_without_a_single_429() -> None:
    config = SandboxConfig(rate_limit=10, window_s=2.0)
    async with running_sandbox(config) as sandbox, client_for(sandbox, concurrency=4) as client:
        started = time.monotonic()
        results = await asyncio.gather(*(client.me() for _ in range(30)))
        elapsed = time.monotonic() - started
        assert client.governor.limit == 10
        assert 2.0 <= client.governor.window_s <= 4.0
    assert len(results) == 30
    assert sandbox.stats.rate_limited == 0 and client.stats.rate_limited == 0
    assert client.stats.requests == 30
    assert 4.0 <= elapsed <= 10.0  # three windows' worth: two waits for the window to turn


async def test_a_full_window_waits_for_retry_after_then_succeeds(
    http: aiohttp.ClientSession,
) -> None:
    config = SandboxConfig(rate_limit=3, window_s=2.0)
    async with running_sandbox(config) as sandbox:
        auth = {"Authorization": f"Bearer {KEY}"}
        for _ in range(3):  # another client used up the window
            async with http.get(f"{sandbox.base_url}/me", headers=auth) as response:
                assert response.status == 200
        async with client_for(sandbox) as client:
            started = time.monotonic()
            me = await client.me()
            elapsed = time.monotonic() - started
    assert me["object"] == "me"
    assert client.stats.rate_limited >= 1 and sandbox.stats.rate_limited >= 1
    assert elapsed >= 0.9  # Retry-After is whole seconds, at least one


# -- a misbehaving server (a proxy in front of the API) --------------------------------------


@pytest.fixture
async def flaky_proxy() -> AsyncIterator[TestServer]:
    """Real HTTP answers no Pivotal server sends: HTML pages, odd envelopes, slow replies."""
    calls: dict[str, int] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        calls[name] = calls.get(name, 0) + 1
        if name == "garbled-then-json" and calls[name] == 1:
            return web.Response(status=200, text='{"object": "me", "unkn', content_type=JSON)
        if name == "garbled-then-json":
            return web.json_response({"object": "me", "unknown_field": [1]})
        if name == "html":
            return web.Response(status=200, text="<html>maintenance</html>")
        if name == "untyped-html":
            return web.Response(status=200, body=b"\n  <!DOCTYPE html><p>hello</p>")
        if name == "bad-gateway":
            return web.Response(status=502, text="<html>Bad Gateway</html>")
        if name == "odd-envelope":
            return web.json_response({"error": "nope"}, status=422)
        if name == "moved":
            raise web.HTTPMovedPermanently(location="/api/v1/garbled-then-json")
        if name == "echo-key":
            message = f"bad key {request.headers['Authorization']}"
            return web.json_response({"error": {"code": "x", "message": message}}, status=403)
        await asyncio.sleep(1.0)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/api/v1/{name}", handler)
    server = TestServer(app)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def proxy_client(server: TestServer, **options: Any) -> PivotalClient:
    base_url = str(server.make_url("/api/v1"))
    return client_for(base_url, retry=RetryPolicy(max_attempts=2, base_s=0.001), **options)


async def test_a_garbled_json_success_is_retried(flaky_proxy: TestServer) -> None:
    """A proxy that cut the body short: the answer was lost, not wrong."""
    async with proxy_client(flaky_proxy) as client:
        response = await client.request("GET", "garbled-then-json")
    assert response.attempts == 2 and response.body["unknown_field"] == [1]


@pytest.mark.parametrize("name", ["html", "untyped-html"])
async def test_an_html_success_is_not_the_api_and_is_not_retried(
    flaky_proxy: TestServer, name: str
) -> None:
    async with proxy_client(flaky_proxy) as client:
        with pytest.raises(NotTheApiError) as raised:
            await client.request("GET", name)
    url = flaky_proxy.make_url(f"/api/v1/{name}")
    assert str(raised.value) == (
        f"GET {url} answered with an HTML page, not the Pivotal API: is this the API URL? "
        "It should end in /api/v1, like https://my.pivotal.app/api/v1 "
        "(check --base-url or PIVOTAL_BASE_URL)."
    )
    assert (raised.value.exit_code, raised.value.attempts, client.stats.requests) == (3, 1, 1)


async def test_a_404_on_me_is_not_the_api(sandbox: Sandbox) -> None:
    root = sandbox.base_url.removesuffix("/api/v1")
    async with client_for(root) as client:
        with pytest.raises(NotTheApiError) as raised:
            await client.me()
    assert str(raised.value) == (
        f"GET {root}/me answered 404 route_not_found, not the Pivotal API: is this the API URL? "
        "It should end in /api/v1, like https://my.pivotal.app/api/v1 "
        "(check --base-url or PIVOTAL_BASE_URL)."
    )
    assert (raised.value.exit_code, client.stats.requests) == (3, 1)


async def test_a_redirect_on_me_is_not_the_api() -> None:
    """`http://` where the API is `https://` redirects: say where to, and do not follow."""

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(location="https://api.example.com/api/v1/me")

    app = web.Application()
    app.router.add_get("/api/v1/me", moved)
    server = TestServer(app)
    await server.start_server()
    base_url = str(server.make_url("/api/v1"))
    try:
        async with proxy_client(server) as client:
            with pytest.raises(NotTheApiError) as raised:
                await client.me()
    finally:
        await server.close()
    assert str(raised.value).startswith(
        f"GET {base_url}/me answered 301, redirected to "
        "https://api.example.com/api/v1/me, not the Pivotal API: is this the API URL?"
    )
    assert client.stats.requests == 1


async def test_a_404_elsewhere_stays_an_api_status_error(sandbox: Sandbox) -> None:
    async with client_for(sandbox) as client:
        with pytest.raises(ApiStatusError) as raised:
            await client.request("GET", "customers/cus_missing")
    assert raised.value.status == 404 and not isinstance(raised.value, NotTheApiError)


async def test_a_rejected_key_names_the_options_that_set_it() -> None:
    config = SandboxConfig(rate_limit=0, revoked_keys=frozenset({"pivotal_gone"}))
    names = ConnectionNames(key="--to-key", key_envvar="PIVOTAL_TO_API_KEY", url="--to-url")
    async with running_sandbox(config) as sandbox:
        async with client_for(sandbox, "pivotal_gone") as client:
            with pytest.raises(AuthenticationError) as default:
                await client.me()
        async with client_for(sandbox, "pivotal_gone", names=names) as client:
            with pytest.raises(AuthenticationError) as named:
                await client.me()
    assert default.value.remedy == "Check --api-key or PIVOTAL_API_KEY."
    assert str(default.value).endswith(". Check --api-key or PIVOTAL_API_KEY.")
    assert named.value.remedy == "Check --to-key or PIVOTAL_TO_API_KEY."


async def test_odd_error_bodies_still_become_errors(flaky_proxy: TestServer) -> None:
    async with proxy_client(flaky_proxy) as client:
        with pytest.raises(ServerError) as gateway:
            await client.request("GET", "bad-gateway")
        with pytest.raises(ApiStatusError) as odd:
            await client.request("GET", "odd-envelope")
        with pytest.raises(ApiStatusError) as echoed:
            await client.request("GET", "echo-key")
    assert (gateway.value.status, gateway.value.code) == (502, "http_502")
    assert gateway.value.attempts == 2
    assert "Bad Gateway" in gateway.value.api_message
    assert (odd.value.status, odd.value.code, odd.value.type) == (422, "http_422", "unknown")
    assert KEY not in str(echoed.value) and "pivotal_…" in str(echoed.value)


async def test_a_redirect_is_not_followed(flaky_proxy: TestServer) -> None:
    """aiohttp would follow it and turn a POST into a GET; a wrong base URL must show instead."""
    async with proxy_client(flaky_proxy) as client:
        with pytest.raises(ApiStatusError) as raised:
            await client.request("POST", "moved", json={"name": "x"})
    assert (raised.value.status, raised.value.attempts, client.stats.requests) == (301, 1, 1)


async def test_a_timeout_is_no_response(flaky_proxy: TestServer) -> None:
    async with proxy_client(flaky_proxy, timeout_s=0.1) as client:
        with pytest.raises(NoResponseError) as raised:
            await client.request("GET", "slow")
    assert "no answer within 0.1 s" in str(raised.value) and raised.value.attempts == 2


async def test_a_stop_drops_requests_waiting_for_the_rate_window_and_lets_none_leave() -> None:
    config = SandboxConfig(rate_limit=3, test_rate_limit=0, window_s=30)
    stop = StopRequest(announce=lambda _: None)
    async with (
        running_sandbox(config) as sandbox,
        PivotalClient(sandbox.base_url, "pivotal_acme", stop=stop) as client,
    ):
        for _ in range(3):
            await client.me()
        waiting = [asyncio.create_task(client.me()) for _ in range(4)]
        await asyncio.sleep(0.2)
        assert not any(task.done() for task in waiting)
        started = time.monotonic()
        stop.set(signal.SIGTERM)
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert time.monotonic() - started < 1.0
    assert all(isinstance(result, RequestAbandoned) for result in results)
    assert not any(result.sent for result in results if isinstance(result, RequestAbandoned))
    assert client.stats.requests == 3


async def test_a_stop_drops_a_request_waiting_to_retry_and_says_it_was_sent() -> None:
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, fault_rate=1.0, fault_seed=1)
    stop = StopRequest(announce=lambda _: None)
    async with (
        running_sandbox(config) as sandbox,
        PivotalClient(sandbox.base_url, "pivotal_acme", stop=stop) as client,
    ):
        request = asyncio.create_task(client.request("GET", "customers"))
        while client.stats.requests < 2:  # it is now backing off before a third attempt
            await asyncio.sleep(0.01)
        stop.set()
        with pytest.raises(RequestAbandoned) as abandoned:
            await asyncio.wait_for(request, 2)
    assert abandoned.value.sent
