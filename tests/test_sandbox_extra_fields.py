"""`--extra-fields`: the sandbox as a newer API, with fields and enum values `bulk` lacks."""

from __future__ import annotations

from typing import Any

import aiohttp
from helpers import api, assert_error, create, listed

from bulk.sandbox import Sandbox

pytest_plugins = ["sandbox_helpers"]
"""`extra_sandbox` and `either_sandbox` (not imported: the plugin's asserts are rewritten)."""

CUSTOMER_EXTRA_FIELDS = ("monthly_orders", "health_score", "health", "address", "integrations")
CONTACT_EXTRA_FIELDS = ("linkedin_url", "timezone")
ONBOARDING_EXTRA_FIELDS = ("checklist_progress", "risk_level")
FUTURE_CUSTOMER_STATUS = "paused_billing"
FUTURE_ONBOARDING_STATE = "on_hold"

DOCUMENTED_CUSTOMER_KEYS = [
    "object",
    "id",
    "display_id",
    "name",
    "slug",
    "domain",
    "status",
    "plan",
    "owner_id",
    "mrr",
    "hubspot_company_id",
    "hubspot_deal_id",
    "stripe_customer_id",
    "intercom_company_id",
    "slack_channel_id",
    "tags",
    "metadata",
    "livemode",
]
TIMESTAMPS = ["created_at", "updated_at"]


def customer_extras(display_id: int) -> dict[str, Any]:
    """The newer API's customer fields, as `bulk/sandbox/newer.py` documents them."""
    return {
        "monthly_orders": 10 * display_id,
        "health_score": 50 + display_id,
        "health": "thriving",
        "address": {
            "city": "Springfield",
            "country_code": "US",
            "lines": [f"{display_id} Main St"],
        },
        "integrations": [{"kind": "slack", "connected": True}],
    }


async def test_a_customer_carries_the_extra_fields_before_its_timestamps(
    http: aiohttp.ClientSession, extra_sandbox: Sandbox
) -> None:
    customer = await create(http, extra_sandbox, "/customers", {"name": "Acme", "mrr": 10})
    assert list(customer) == DOCUMENTED_CUSTOMER_KEYS + list(CUSTOMER_EXTRA_FIELDS) + TIMESTAMPS
    assert {name: customer[name] for name in CUSTOMER_EXTRA_FIELDS} == customer_extras(1)
    assert (customer["status"], customer["mrr"], customer["slug"]) == ("onboarding", 10, "acme")
    second = await create(http, extra_sandbox, "/customers", {"name": "Globex"})
    assert second["monthly_orders"] == 20
    assert second["address"]["lines"] == ["2 Main St"]


async def test_every_read_of_an_object_carries_them(
    http: aiohttp.ClientSession, extra_sandbox: Sandbox
) -> None:
    created = await create(http, extra_sandbox, "/customers", {"name": "Acme"})
    fetched = (await api(http, extra_sandbox, "GET", "/customers/1")).body
    page = await listed(http, extra_sandbox, "/customers")
    patched = await api(http, extra_sandbox, "PATCH", "/customers/1", json={"plan": "pro"})
    assert fetched == created
    assert page["data"] == [created]
    assert patched.status == 200
    assert {name: patched.body[name] for name in CUSTOMER_EXTRA_FIELDS} == customer_extras(1)
    assert patched.body["plan"] == "pro"


async def test_a_replay_carries_them(http: aiohttp.ClientSession, extra_sandbox: Sandbox) -> None:
    raw = b'{"name":"Acme"}'
    headers = {"Idempotency-Key": "k-1"}
    first = await api(http, extra_sandbox, "POST", "/customers", data=raw, headers=headers)
    replay = await api(http, extra_sandbox, "POST", "/customers", data=raw, headers=headers)
    assert (replay.raw, replay.headers["Idempotent-Replayed"]) == (first.raw, "true")
    assert replay.body["monthly_orders"] == 10


async def test_contacts_and_onboardings_carry_theirs(
    http: aiohttp.ClientSession, extra_sandbox: Sandbox
) -> None:
    await create(http, extra_sandbox, "/customers", {"name": "Acme"})
    contact = await create(
        http, extra_sandbox, "/customers/1/contacts", {"name": "Bob", "email": "bob@x.test"}
    )
    assert list(contact)[-4:] == [*CONTACT_EXTRA_FIELDS, *TIMESTAMPS]
    assert contact["linkedin_url"] == "https://www.linkedin.com/in/" + contact["id"]
    assert contact["timezone"] == "UTC"
    onboarding = await create(http, extra_sandbox, "/onboardings", {"customer_id": 1})
    assert list(onboarding)[-4:] == [*ONBOARDING_EXTRA_FIELDS, *TIMESTAMPS]
    assert onboarding["checklist_progress"] == {"done": 0, "total": 12}
    assert onboarding["risk_level"] == "elevated"
    assert onboarding["state"] == "active"
    listed_contacts = await listed(http, extra_sandbox, "/customers/1/contacts")
    listed_onboardings = await listed(http, extra_sandbox, "/customers/1/onboardings")
    assert (listed_contacts["data"], listed_onboardings["data"]) == ([contact], [onboarding])


async def test_sent_extra_fields_are_ignored_like_any_unknown_field(
    http: aiohttp.ClientSession, extra_sandbox: Sandbox
) -> None:
    body = {"name": "Acme", "monthly_orders": 999, "health": "bad", "address": "x", "bogus": 1}
    customer = await create(http, extra_sandbox, "/customers", body)
    assert {name: customer[name] for name in CUSTOMER_EXTRA_FIELDS} == customer_extras(1)
    assert "bogus" not in customer
    patched = await api(http, extra_sandbox, "PATCH", "/customers/1", json={"monthly_orders": 5})
    assert (patched.status, patched.body["monthly_orders"]) == (200, 10)


async def test_a_future_name_gets_unknown_enum_values_when_they_are_omitted(
    http: aiohttp.ClientSession, extra_sandbox: Sandbox
) -> None:
    future = await create(http, extra_sandbox, "/customers", {"name": "Future Corp"})
    assert future["status"] == FUTURE_CUSTOMER_STATUS == "paused_billing"
    given = await create(
        http, extra_sandbox, "/customers", {"name": "Futurama", "status": "active"}
    )
    assert given["status"] == "active"
    plain = await create(http, extra_sandbox, "/customers", {"name": "Acme Future"})
    assert plain["status"] == "onboarding"
    onboarding = await create(
        http, extra_sandbox, "/onboardings", {"customer_id": 1, "name": "Future launch"}
    )
    assert onboarding["state"] == FUTURE_ONBOARDING_STATE == "on_hold"
    assert onboarding["phase"] == "before_getting_started"
    page = await listed(http, extra_sandbox, "/customers", params={"status": "paused_billing"})
    assert [row["name"] for row in page["data"]] == ["Future Corp"]
    states = await listed(http, extra_sandbox, "/onboardings", params={"state": "on_hold"})
    assert [row["name"] for row in states["data"]] == ["Future launch"]


async def test_the_newer_api_accepts_its_own_new_values(
    http: aiohttp.ClientSession, extra_sandbox: Sandbox
) -> None:
    created = await create(
        http, extra_sandbox, "/customers", {"name": "Acme", "status": "paused_billing"}
    )
    assert created["status"] == "paused_billing"
    patched = await api(http, extra_sandbox, "PATCH", "/customers/1", json={"status": "active"})
    assert patched.body["status"] == "active"
    bogus = await api(http, extra_sandbox, "POST", "/customers", json={"name": "B", "status": "x"})
    assert_error(bogus, 400, "invalid_request_error", "invalid_enum_value", "status")


async def test_the_documented_mode_adds_nothing(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    customer = await create(http, sandbox, "/customers", {"name": "Future Corp"})
    assert list(customer) == DOCUMENTED_CUSTOMER_KEYS + TIMESTAMPS
    assert customer["status"] == "onboarding"
    contact = await create(
        http, sandbox, "/customers/1/contacts", {"name": "Bob", "email": "bob@x.test"}
    )
    assert not set(CONTACT_EXTRA_FIELDS) & set(contact)
    onboarding = await create(http, sandbox, "/onboardings", {"customer_id": 1, "name": "Future"})
    assert not set(ONBOARDING_EXTRA_FIELDS) & set(onboarding)
    assert onboarding["state"] == "active"
    refused = await api(
        http, sandbox, "POST", "/customers", json={"name": "B", "status": "paused_billing"}
    )
    assert_error(refused, 400, "invalid_request_error", "invalid_enum_value", "status")


async def test_either_mode_serves_the_documented_fields(
    http: aiohttp.ClientSession, either_sandbox: Sandbox
) -> None:
    customer = await create(http, either_sandbox, "/customers", {"name": "Acme"})
    assert list(customer)[: len(DOCUMENTED_CUSTOMER_KEYS)] == DOCUMENTED_CUSTOMER_KEYS
    assert list(customer)[-2:] == TIMESTAMPS
