"""`PivotalClient` against literal responses from pivotal-api.md, not against our sandbox.

Each fixture in `fixtures/` is a body written out by hand from the API page (with fields the
client does not know, as a newer API sends them); the server is plain aiohttp and shares no code
with `bulk`. So these tests pin the client to the documented API itself (issue 9, item 14).
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from server import Canned, ContractServer, fixture_bytes

from bulk.api.client import PivotalClient
from bulk.errors import ApiStatusError, AuthenticationError

KEY = "pivotal_acme"
START = 1_780_000_000.0


def fixture(name: str) -> Any:
    return json.loads(fixture_bytes(name))


class FakeTime:
    """An injected clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = START
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def client(server: ContractServer, time: FakeTime | None = None) -> PivotalClient:
    time = time or FakeTime()
    return PivotalClient(
        server.base_url,
        KEY,
        concurrency=1,
        sleep=time.sleep,
        clock=time.clock,
        rng=random.Random(0),
    )


async def test_a_customer_comes_back_with_unknown_fields_intact(contract: ContractServer) -> None:
    contract.route("GET", "/customers/42", Canned(200, "customer.json"))
    async with client(contract) as api:
        response = await api.request("GET", "customers/42")
    assert response.status == 200
    assert response.body == fixture("customer.json")
    assert response.body["monthly_orders"] == 1280
    assert (response.body["id"], response.body["display_id"]) == ("cl9bn00of0000g7l8gcq8c4xk", 42)
    seen = contract.requests("GET", "/customers/42")[0]
    assert seen.headers["Authorization"] == f"Bearer {KEY}"


async def test_unknown_enum_values_and_nested_fields_pass_through(
    contract: ContractServer,
) -> None:
    contract.route("GET", "/customers/43", Canned(200, "customer_newer.json"))
    async with client(contract) as api:
        body = (await api.request("GET", "customers/43")).body
    assert body == fixture("customer_newer.json")
    assert body["status"] == "paused_billing"
    assert body["address"] == {
        "city": "Lyon",
        "country_code": "FR",
        "lines": ["12 rue de la République"],
    }


@pytest.mark.parametrize("status", [200, 201])
async def test_200_and_201_are_both_success(contract: ContractServer, status: int) -> None:
    contract.route("POST", "/customers/42/contacts", Canned(status, "contact.json"))
    async with client(contract) as api:
        response = await api.request(
            "POST", "customers/42/contacts", json={"name": "Bob Dupont", "email": "bob@x.test"}
        )
    assert (response.status, response.body) == (status, fixture("contact.json"))
    assert response.body["linkedin_url"] == "https://www.linkedin.com/in/bob-dupont"
    (seen,) = contract.requests("POST", "/customers/42/contacts")
    assert json.loads(seen.body) == {"name": "Bob Dupont", "email": "bob@x.test"}
    assert seen.headers.get("Idempotency-Key")


async def test_an_onboarding_and_the_deleted_envelope(contract: ContractServer) -> None:
    contract.route("GET", "/onboardings/3", Canned(200, "onboarding.json"))
    contract.route("DELETE", "/customers/cl9bn00of0000g7l8gcq8c4xk", Canned(200, "deleted.json"))
    async with client(contract) as api:
        onboarding = (await api.request("GET", "onboardings/3")).body
        deleted = (await api.request("DELETE", "customers/cl9bn00of0000g7l8gcq8c4xk")).body
    assert onboarding["checklist_progress"] == {"done": 3, "total": 12}
    assert onboarding == fixture("onboarding.json")
    assert deleted == {
        "object": "deleted",
        "id": "cl9bn00of0000g7l8gcq8c4xk",
        "display_id": 42,
        "deleted": True,
    }


async def test_me(contract: ContractServer) -> None:
    contract.route("GET", "/me", Canned(200, "me.json"))
    async with client(contract) as api:
        me = await api.me()
    assert me == fixture("me.json")


@pytest.mark.parametrize(
    ("status", "name", "type_", "code", "field"),
    [
        (409, "error_409_slug_taken.json", "conflict", "slug_taken", "slug"),
        (409, "error_409_idempotency_key_reused.json", "conflict", "idempotency_key_reused", None),
        (404, "error_404_customer_not_found.json", "not_found", "customer_not_found", None),
        (400, "error_400_invalid_string.json", "invalid_request_error", "invalid_string", "email"),
    ],
    ids=["slug_taken", "idempotency_key_reused", "not_found", "invalid_string"],
)
async def test_an_error_envelope_becomes_api_status_error(
    contract: ContractServer, status: int, name: str, type_: str, code: str, field: str | None
) -> None:
    contract.route("POST", "/customers", Canned(status, name))
    async with client(contract) as api:
        with pytest.raises(ApiStatusError) as raised:
            await api.request("POST", "customers", json={"name": "Café Müller"})
    error = raised.value
    assert (error.status, error.type, error.code, error.field) == (status, type_, code, field)
    assert error.api_message == fixture(name)["error"]["message"]
    assert len(contract.requests("POST", "/customers")) == 1  # not retried


async def test_401_is_an_authentication_error(contract: ContractServer) -> None:
    contract.route("GET", "/me", Canned(401, "error_401_invalid_api_key.json"))
    async with client(contract) as api:
        with pytest.raises(AuthenticationError) as raised:
            await api.me()
    assert (raised.value.status, raised.value.code) == (401, "invalid_api_key")
    assert len(contract.requests("GET", "/me")) == 1


async def test_429_waits_the_whole_seconds_of_retry_after(contract: ContractServer) -> None:
    limited = {
        "Retry-After": "7",
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(START) + 7),
    }
    contract.route(
        "GET",
        "/customers/42",
        Canned(429, "error_429_rate_limited.json", limited),
        Canned(200, "customer.json"),
    )
    time = FakeTime()
    async with client(contract, time) as api:
        response = await api.request("GET", "customers/42")
    assert response.body == fixture("customer.json")
    assert len(contract.requests("GET", "/customers/42")) == 2
    assert 7.0 <= sum(time.slept) < 8.0


async def test_a_500_is_retried_with_the_same_key_and_the_same_bytes(
    contract: ContractServer,
) -> None:
    contract.route(
        "POST",
        "/onboardings",
        Canned(500, "error_500_internal_error.json"),
        Canned(201, "onboarding.json"),
    )
    body = {"customer_id": "cl9bn00of0000g7l8gcq8c4xk", "name": "EU rollout", "phase": "review"}
    async with client(contract) as api:
        response = await api.request("POST", "onboardings", json=body, idempotency_key="row-3")
    assert response.body == fixture("onboarding.json")
    first, second = contract.requests("POST", "/onboardings")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == "row-3"
    assert first.body == second.body
    assert json.loads(first.body) == body


async def test_iterate_follows_next_cursor_and_trusts_has_more(contract: ContractServer) -> None:
    contract.route("GET", "/customers", Canned(200, "customers_page_1.json"))
    contract.route(
        "GET",
        "/customers",
        Canned(200, "customers_page_2.json"),
        query={"cursor": "2026-05-26T17:21:09.414Z"},
    )
    async with client(contract) as api:
        rows = [row async for row in api.iterate("customers")]
    assert [row["display_id"] for row in rows] == [5, 4, 3]  # page 1 was short, has_more said go
    assert rows[1]["status"] == "paused_billing"
    assert [row["monthly_orders"] for row in rows] == [5, 4, 3]
    first, second = contract.requests("GET", "/customers")
    assert "cursor" not in first.query
    assert second.query["cursor"] == "2026-05-26T17:21:09.414Z"
    assert len(contract.seen) == 2  # has_more false: no third request


async def test_iterate_an_empty_list(contract: ContractServer) -> None:
    contract.route("GET", "/customers/42/contacts", Canned(200, "empty_list.json"))
    async with client(contract) as api:
        rows = [row async for row in api.iterate("customers/42/contacts")]
    assert rows == []
    assert len(contract.seen) == 1
