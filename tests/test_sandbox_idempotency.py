"""Idempotency-Key: byte-identical replays, conflicts, scope, expiry and limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from helpers import (
    LIVE_KEY,
    OTHER_KEY,
    TEST_KEY,
    Answer,
    ManualClock,
    api,
    assert_error,
    create,
    listed,
)

from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox

DAY_S = 24 * 60 * 60


async def post(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    path: str,
    body: object,
    idempotency_key: str,
    *,
    key: str = LIVE_KEY,
) -> Answer:
    return await api(
        http,
        sandbox,
        "POST",
        path,
        key=key,
        json=body,
        headers={"Idempotency-Key": idempotency_key},
    )


async def count(http: aiohttp.ClientSession, sandbox: Sandbox, path: str = "/customers") -> int:
    return len((await listed(http, sandbox, path, params={"limit": "100"}))["data"])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_780_000_000.0)


@pytest_asyncio.fixture
async def timed(clock: ManualClock) -> AsyncIterator[Sandbox]:
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, clock=clock)
    async with running_sandbox(config) as running:
        yield running


async def test_a_replay_returns_the_same_bytes_and_creates_nothing(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    body = {"name": "Acme", "tags": ["a"], "metadata": {"n": 1}}
    first = await post(http, timed, "/customers", body, "key-1")
    assert first.status == 201
    assert "Idempotent-Replayed" not in first.headers
    clock.advance(30)
    replay = await post(http, timed, "/customers", body, "key-1")
    assert replay.status == 201
    assert replay.raw == first.raw
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await count(http, timed) == 1
    assert timed.stats.replays == 1


async def test_a_replay_returns_the_stored_body_even_after_changes(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    first = await post(http, sandbox, "/customers", {"name": "Acme"}, "key-1")
    await api(http, sandbox, "PATCH", "/customers/1", json={"name": "Renamed"})
    replay = await post(http, sandbox, "/customers", {"name": "Acme"}, "key-1")
    assert (replay.status, replay.raw) == (201, first.raw)
    assert replay.body["name"] == "Acme"


async def test_a_replay_works_for_contacts_and_onboardings(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    for path, body in (
        ("/customers/1/contacts", {"name": "Bob", "email": "bob@x.test"}),
        ("/onboardings", {"customer_id": 1}),
    ):
        first = await post(http, sandbox, path, body, "key-1")
        replay = await post(http, sandbox, path, body, "key-1")
        assert (first.status, replay.status) == (201, 201)
        assert replay.raw == first.raw
        assert replay.headers["Idempotent-Replayed"] == "true"
    assert await count(http, sandbox, "/customers/1/contacts") == 1
    assert await count(http, sandbox, "/onboardings") == 1


async def test_a_test_key_shares_the_workspace_scope(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    first = await post(http, sandbox, "/customers", {"name": "Acme"}, "key-1", key=LIVE_KEY)
    replay = await post(http, sandbox, "/customers", {"name": "Acme"}, "key-1", key=TEST_KEY)
    assert (replay.status, replay.raw) == (201, first.raw)
    assert replay.headers["Idempotent-Replayed"] == "true"


async def test_same_key_with_another_body_is_a_conflict(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    await post(http, sandbox, "/customers", {"name": "Acme"}, "key-1")
    reused = await post(http, sandbox, "/customers", {"name": "Globex"}, "key-1")
    assert_error(reused, 409, "conflict", "idempotency_key_reused")
    assert "Idempotent-Replayed" not in reused.headers
    assert await count(http, sandbox) == 1


async def test_same_key_while_in_flight_is_a_conflict(http: aiohttp.ClientSession) -> None:
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, latency_ms=300)
    async with running_sandbox(config) as sandbox:
        body = {"name": "Acme"}
        answers = await asyncio.gather(
            post(http, sandbox, "/customers", body, "key-1"),
            post(http, sandbox, "/customers", body, "key-1"),
        )
        by_status = {answer.status: answer for answer in answers}
        assert sorted(by_status) == [201, 409]
        assert_error(by_status[409], 409, "conflict", "idempotency_key_in_use")
        replay = await post(http, sandbox, "/customers", body, "key-1")
        assert (replay.status, replay.raw) == (201, by_status[201].raw)
        assert await count(http, sandbox) == 1


async def test_errors_are_not_stored(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    invalid = await post(http, sandbox, "/customers", {"name": ""}, "key-1")
    assert_error(invalid, 400, "invalid_request_error", "too_small", "name")
    corrected = await post(http, sandbox, "/customers", {"name": "Acme"}, "key-1")
    assert corrected.status == 201
    assert "Idempotent-Replayed" not in corrected.headers

    taken = await post(http, sandbox, "/customers", {"name": "Acme"}, "key-2")
    assert_error(taken, 409, "conflict", "slug_taken", "slug")
    await api(http, sandbox, "DELETE", "/customers/1")
    retried = await post(http, sandbox, "/customers", {"name": "Acme"}, "key-2")
    assert retried.status == 201
    assert retried.body["display_id"] == 2
    assert await count(http, sandbox) == 1


async def test_keys_are_scoped_per_workspace(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    mine = await post(http, sandbox, "/customers", {"name": "Acme"}, "key-1", key=LIVE_KEY)
    theirs = await post(http, sandbox, "/customers", {"name": "Acme"}, "key-1", key=OTHER_KEY)
    assert (mine.status, theirs.status) == (201, 201)
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.body["id"] != theirs.body["id"]
    different = await post(http, sandbox, "/customers", {"name": "Other"}, "key-2", key=OTHER_KEY)
    assert different.status == 201


async def test_keys_are_scoped_per_endpoint(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    customer = await post(http, sandbox, "/customers", {"name": "Acme"}, "key-1")
    onboarding = await post(http, sandbox, "/onboardings", {"customer_id": 1}, "key-1")
    contact = await post(
        http, sandbox, "/customers/1/contacts", {"name": "B", "email": "b@x.test"}, "key-1"
    )
    assert (customer.status, onboarding.status, contact.status) == (201, 201, 201)
    assert (onboarding.body["object"], contact.body["object"]) == ("onboarding", "contact")
    assert onboarding.body["customer_id"] == customer.body["id"]


async def test_keys_expire_after_24_hours(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    first = await post(http, timed, "/customers", {"name": "Acme"}, "key-1")
    clock.advance(DAY_S - 1)
    replay = await post(http, timed, "/customers", {"name": "Acme"}, "key-1")
    assert (replay.status, replay.raw) == (201, first.raw)
    reused = await post(http, timed, "/customers", {"name": "Globex"}, "key-1")
    assert_error(reused, 409, "conflict", "idempotency_key_reused")
    clock.advance(2)
    fresh = await post(http, timed, "/customers", {"name": "Globex"}, "key-1")
    assert fresh.status == 201
    assert "Idempotent-Replayed" not in fresh.headers
    assert fresh.body["display_id"] == 2
    again = await post(http, timed, "/customers", {"name": "Globex"}, "key-1")
    assert (again.raw, again.headers["Idempotent-Replayed"]) == (fresh.raw, "true")


async def test_a_key_of_255_bytes_is_accepted_and_256_refused(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    accepted = await post(http, sandbox, "/customers", {"name": "Acme"}, "k" * 255)
    assert accepted.status == 201
    refused = await post(http, sandbox, "/customers", {"name": "Globex"}, "k" * 256)
    assert_error(refused, 400, "invalid_request_error", "invalid_string", "Idempotency-Key")
    empty = await post(http, sandbox, "/customers", {"name": "Globex"}, "")
    assert_error(empty, 400, "invalid_request_error", "invalid_string", "Idempotency-Key")
    assert await count(http, sandbox) == 1


async def test_the_key_is_ignored_on_patch(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    for plan in ("a", "b"):
        answer = await api(
            http,
            sandbox,
            "PATCH",
            "/customers/1",
            json={"plan": plan},
            headers={"Idempotency-Key": "key-1"},
        )
        assert (answer.status, answer.body["plan"]) == (200, plan)
        assert "Idempotent-Replayed" not in answer.headers
