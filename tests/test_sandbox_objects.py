"""The sandbox's objects: envelopes, ids, slugs, emails, primaries, onboardings, /me, /health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from helpers import (
    LIVE_KEY,
    OTHER_KEY,
    TEST_KEY,
    ManualClock,
    api,
    assert_error,
    create,
    epoch_of,
    listed,
)

from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox

CREATED_AT = "2026-05-26T17:21:09.412Z"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(epoch_of(CREATED_AT))


@pytest_asyncio.fixture
async def timed(clock: ManualClock) -> AsyncIterator[Sandbox]:
    """A sandbox whose clock stands still at CREATED_AT until a test moves it."""
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, clock=clock)
    async with running_sandbox(config) as running:
        yield running


async def _family(http: aiohttp.ClientSession, sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """One customer with one contact and one onboarding (display_id 1 each)."""
    customer = await create(http, sandbox, "/customers", {"name": "Acme"})
    contact = await create(
        http,
        sandbox,
        f"/customers/{customer['id']}/contacts",
        {"name": "Bob", "email": "bob@acme.test"},
    )
    onboarding = await create(http, sandbox, "/onboardings", {"customer_id": customer["id"]})
    return {"customers": customer, "contacts": contact, "onboardings": onboarding}


# -- /health and /me -------------------------------------------------------------------------


async def test_health_needs_no_key(http: aiohttp.ClientSession, timed: Sandbox) -> None:
    answer = await api(http, timed, "GET", "/health", key=None)
    assert answer.status == 200
    assert answer.body == {"status": "ok", "timestamp": CREATED_AT}


@pytest.mark.parametrize(
    ("key", "livemode", "name"),
    [(LIVE_KEY, True, "Sandbox live key"), (TEST_KEY, False, "Sandbox test key")],
)
async def test_me_describes_the_key_and_its_workspace(
    http: aiohttp.ClientSession, sandbox: Sandbox, key: str, livemode: bool, name: str
) -> None:
    answer = await api(http, sandbox, "GET", "/me", key=key)
    assert answer.status == 200
    me = answer.body
    assert set(me) == {"object", "api_key", "organization"}
    assert me["object"] == "me"
    api_key = me["api_key"]
    assert set(api_key) == {"id", "name", "prefix", "scopes", "rate_limit_tier", "livemode"}
    assert api_key["livemode"] is livemode
    assert api_key["name"] == name
    assert key.startswith(api_key["prefix"])
    assert isinstance(api_key["scopes"], list)
    assert set(me["organization"]) == {"id", "slug", "name"}
    assert me["organization"]["slug"] == "acme"


async def test_live_and_test_keys_share_the_organization(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    live = (await api(http, sandbox, "GET", "/me", key=LIVE_KEY)).body
    test = (await api(http, sandbox, "GET", "/me", key=TEST_KEY)).body
    other = (await api(http, sandbox, "GET", "/me", key=OTHER_KEY)).body
    assert live["organization"] == test["organization"]
    assert live["api_key"]["id"] != test["api_key"]["id"]
    assert other["organization"]["slug"] == "globex"
    assert other["organization"]["id"] != live["organization"]["id"]


async def test_distinct_keys_have_distinct_key_ids(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    ids = set()
    keys = ("pivotal_test_acme", "pivotal_test_globex", "pivotal_acme-corp", "pivotal_acme-inc")
    for key in keys:
        ids.add((await api(http, sandbox, "GET", "/me", key=key)).body["api_key"]["id"])
    assert len(ids) == 4


# -- customers -------------------------------------------------------------------------------


async def test_create_customer_returns_the_full_envelope(
    http: aiohttp.ClientSession, timed: Sandbox
) -> None:
    metadata = {"crm": {"region": "EU", "scores": [1, 2.5, None]}, "flag": True}
    body = {
        "name": "Acme Corp",
        "slug": "acme",
        "domain": "ACME.Example.COM",
        "status": "active",
        "plan": "enterprise",
        "owner_id": "usr_1",
        "mrr": 125000,
        "hubspot_company_id": "hs-1",
        "hubspot_deal_id": "hd-1",
        "stripe_customer_id": "cus_1",
        "intercom_company_id": "ic-1",
        "slack_channel_id": "C01",
        "tags": ["vip", "eu"],
        "metadata": metadata,
    }
    answer = await api(http, timed, "POST", "/customers", json=body)
    assert answer.status == 201
    customer = answer.body
    assert isinstance(customer["id"], str) and not customer["id"].isdigit()
    assert customer == {
        **body,
        "object": "customer",
        "id": customer["id"],
        "display_id": 1,
        "domain": "acme.example.com",
        "livemode": True,
        "created_at": CREATED_AT,
        "updated_at": CREATED_AT,
    }
    by_id = await api(http, timed, "GET", f"/customers/{customer['id']}")
    by_display_id = await api(http, timed, "GET", "/customers/1")
    assert by_id.status == by_display_id.status == 200
    assert by_id.body == by_display_id.body == customer


async def test_create_customer_fills_defaults(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    customer = await create(http, sandbox, "/customers", {"name": "Acme"})
    assert customer["slug"] == "acme"
    assert customer["status"] == "onboarding"
    assert customer["tags"] == []
    assert customer["metadata"] == {}
    assert customer["livemode"] is True


async def test_display_ids_count_per_workspace_and_per_object_type(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    first = await create(http, sandbox, "/customers", {"name": "One"})
    second = await create(http, sandbox, "/customers", {"name": "Two"})
    elsewhere = await create(http, sandbox, "/customers", {"name": "One"}, key=OTHER_KEY)
    contact_a = await create(
        http, sandbox, "/customers/1/contacts", {"name": "A", "email": "a@x.test"}
    )
    contact_b = await create(
        http, sandbox, "/customers/2/contacts", {"name": "B", "email": "b@x.test"}
    )
    onboarding = await create(http, sandbox, "/onboardings", {"customer_id": 2})
    assert (first["display_id"], second["display_id"], elsewhere["display_id"]) == (1, 2, 1)
    assert (contact_a["display_id"], contact_b["display_id"]) == (1, 2)
    assert onboarding["display_id"] == 1
    assert len({first["id"], second["id"], elsewhere["id"]}) == 3


@pytest.mark.parametrize("collection", ["customers", "contacts", "onboardings"])
@pytest.mark.parametrize("by", ["id", "display_id"])
async def test_every_object_path_accepts_id_and_display_id(
    http: aiohttp.ClientSession, sandbox: Sandbox, collection: str, by: str
) -> None:
    family = await _family(http, sandbox)
    target = family[collection]
    ref = str(target[by])
    got = await api(http, sandbox, "GET", f"/{collection}/{ref}")
    assert got.status == 200
    assert got.body == target
    patched = await api(http, sandbox, "PATCH", f"/{collection}/{ref}", json={"name": "Renamed"})
    assert patched.status == 200
    assert (patched.body["id"], patched.body["name"]) == (target["id"], "Renamed")
    deleted = await api(http, sandbox, "DELETE", f"/{collection}/{ref}")
    assert deleted.status == 200
    assert deleted.body == {
        "object": "deleted",
        "id": target["id"],
        "display_id": target["display_id"],
        "deleted": True,
    }


@pytest.mark.parametrize("by", ["id", "display_id"])
async def test_nested_paths_accept_id_and_display_id(
    http: aiohttp.ClientSession, sandbox: Sandbox, by: str
) -> None:
    family = await _family(http, sandbox)
    customer = family["customers"]
    ref = str(customer[by])
    contacts = await listed(http, sandbox, f"/customers/{ref}/contacts")
    onboardings = await listed(http, sandbox, f"/customers/{ref}/onboardings")
    assert contacts["data"] == [family["contacts"]]
    assert onboardings["data"] == [family["onboardings"]]
    added = await create(
        http, sandbox, f"/customers/{ref}/contacts", {"name": "Eve", "email": "eve@acme.test"}
    )
    assert added["customer_id"] == customer["id"]


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        # pivotal-api.md: accented letters are characters other than ASCII a-z0-9 (no folding)
        ("Café Crème, Inc.", "caf-cr-me-inc"),
        ("  Hello   World!! ", "hello-world"),
        ("ACME 2.0 (EU)", "acme-2-0-eu"),
        ("Ünïcödé GmbH", "n-c-d-gmbh"),
        ("a" * 70, "a" * 64),
        ("x" * 63 + " y", "x" * 63),  # cut to 64 characters, then trimmed
    ],
)
async def test_slug_is_derived_from_the_name(
    http: aiohttp.ClientSession, sandbox: Sandbox, name: str, slug: str
) -> None:
    customer = await create(http, sandbox, "/customers", {"name": name})
    assert (customer["name"], customer["slug"]) == (name, slug)


async def test_given_slug_taken_is_a_conflict(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme", "slug": "acme"})
    answer = await api(http, sandbox, "POST", "/customers", json={"name": "Other", "slug": "acme"})
    assert_error(answer, 409, "conflict", "slug_taken", "slug")


async def test_derived_slug_taken_is_a_conflict(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    await create(http, sandbox, "/customers", {"name": "Other", "slug": "caf-cr-me-inc"})
    answer = await api(http, sandbox, "POST", "/customers", json={"name": "Café Crème, Inc."})
    assert_error(answer, 409, "conflict", "slug_taken", "slug")
    page = await listed(http, sandbox, "/customers")
    assert len(page["data"]) == 1


async def test_patch_to_a_taken_slug_is_a_conflict(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    await create(http, sandbox, "/customers", {"name": "Globex"})
    answer = await api(http, sandbox, "PATCH", "/customers/2", json={"slug": "acme"})
    assert_error(answer, 409, "conflict", "slug_taken", "slug")
    assert (await api(http, sandbox, "GET", "/customers/2")).body["slug"] == "globex"
    same = await api(http, sandbox, "PATCH", "/customers/1", json={"slug": "acme"})
    assert same.status == 200
    assert same.body["slug"] == "acme"


async def test_soft_delete_frees_the_slug(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    assert (await api(http, sandbox, "DELETE", "/customers/1")).status == 200
    again = await create(http, sandbox, "/customers", {"name": "Acme"})
    assert (again["slug"], again["display_id"]) == ("acme", 2)
    moved = await create(http, sandbox, "/customers", {"name": "Globex"})
    renamed = await api(http, sandbox, "PATCH", f"/customers/{moved['id']}", json={"slug": "acme"})
    assert_error(renamed, 409, "conflict", "slug_taken", "slug")


async def test_slugs_are_unique_per_workspace_only(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    mine = await create(http, sandbox, "/customers", {"name": "Acme"})
    theirs = await create(http, sandbox, "/customers", {"name": "Acme"}, key=OTHER_KEY)
    assert mine["slug"] == theirs["slug"] == "acme"


async def test_patch_keeps_omitted_fields(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    customer = await create(
        http,
        timed,
        "/customers",
        {"name": "Acme", "plan": "pro", "mrr": 500, "tags": ["a"], "metadata": {"k": [1]}},
    )
    clock.advance(60)
    answer = await api(http, timed, "PATCH", "/customers/1", json={"status": "active"})
    assert answer.status == 200
    assert answer.body == {**customer, "status": "active", "updated_at": "2026-05-26T17:22:09.412Z"}
    assert (await api(http, timed, "GET", "/customers/1")).body == answer.body


async def test_patch_ignores_read_only_fields(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    customer = await create(http, sandbox, "/customers", {"name": "Acme"})
    answer = await api(
        http,
        sandbox,
        "PATCH",
        "/customers/1",
        json={"id": "cxyz", "display_id": 7, "livemode": False, "object": "contact"},
    )
    assert answer.status == 200
    assert {k: answer.body[k] for k in ("id", "display_id", "livemode", "object")} == {
        "id": customer["id"],
        "display_id": 1,
        "livemode": True,
        "object": "customer",
    }


@pytest.mark.parametrize("path", ["/customers/1", "/contacts/1", "/onboardings/1", "/customers"])
async def test_put_is_method_not_allowed(
    http: aiohttp.ClientSession, sandbox: Sandbox, path: str
) -> None:
    await _family(http, sandbox)
    answer = await api(http, sandbox, "PUT", path, json={"name": "X"})
    assert_error(answer, 405, "invalid_request_error", "method_not_allowed")
    assert "PUT" not in answer.headers["Allow"]
    assert "GET" in answer.headers["Allow"]


# -- contacts --------------------------------------------------------------------------------


async def test_create_contact_returns_the_full_envelope(
    http: aiohttp.ClientSession, timed: Sandbox
) -> None:
    customer = await create(http, timed, "/customers", {"name": "Acme"})
    body = {
        "name": "Bob Smith",
        "email": "Bob.Smith@ACME.test",
        "title": "CTO",
        "phone": "+1 555 0100",
        "is_primary": True,
        "labels": ["tech"],
    }
    contact = await create(http, timed, "/customers/1/contacts", body)
    assert contact == {
        **body,
        "object": "contact",
        "id": contact["id"],
        "display_id": 1,
        "customer_id": customer["id"],
        "email": "bob.smith@acme.test",
        "livemode": True,
        "created_at": CREATED_AT,
        "updated_at": CREATED_AT,
    }


async def test_email_taken_within_one_customer_only(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    await create(http, sandbox, "/customers", {"name": "Globex"})
    await create(http, sandbox, "/customers/1/contacts", {"name": "Bob", "email": "bob@x.test"})
    clash = await api(
        http, sandbox, "POST", "/customers/1/contacts", json={"name": "Bob", "email": "BOB@x.test"}
    )
    assert_error(clash, 409, "conflict", "email_taken", "email")
    other = await create(
        http, sandbox, "/customers/2/contacts", {"name": "Bob", "email": "bob@x.test"}
    )
    assert other["email"] == "bob@x.test"
    await create(http, sandbox, "/customers/1/contacts", {"name": "Al", "email": "al@x.test"})
    patched = await api(http, sandbox, "PATCH", "/contacts/3", json={"email": "Bob@X.test"})
    assert_error(patched, 409, "conflict", "email_taken", "email")
    own = await api(http, sandbox, "PATCH", "/contacts/1", json={"email": "BOB@X.TEST"})
    assert own.status == 200
    assert own.body["email"] == "bob@x.test"


async def test_deleted_contact_frees_its_email(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    await create(http, sandbox, "/customers/1/contacts", {"name": "Bob", "email": "bob@x.test"})
    assert (await api(http, sandbox, "DELETE", "/contacts/1")).status == 200
    again = await create(
        http, sandbox, "/customers/1/contacts", {"name": "Bob", "email": "bob@x.test"}
    )
    assert again["display_id"] == 2


async def test_new_primary_contact_demotes_the_previous_one(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    await create(http, sandbox, "/customers", {"name": "Globex"})
    await create(
        http,
        sandbox,
        "/customers/1/contacts",
        {"name": "A", "email": "a@x.test", "is_primary": True},
    )
    elsewhere = await create(
        http,
        sandbox,
        "/customers/2/contacts",
        {"name": "Z", "email": "z@x.test", "is_primary": True},
    )
    second = await create(
        http,
        sandbox,
        "/customers/1/contacts",
        {"name": "B", "email": "b@x.test", "is_primary": True},
    )
    assert second["is_primary"] is True

    async def primaries() -> dict[int, bool]:
        rows = []
        for ref in (1, 2):
            rows += (await listed(http, sandbox, f"/customers/{ref}/contacts"))["data"]
        return {row["display_id"]: row["is_primary"] for row in rows}

    assert await primaries() == {1: False, 2: True, 3: True}
    promoted = await api(http, sandbox, "PATCH", "/contacts/1", json={"is_primary": True})
    assert promoted.body["is_primary"] is True
    assert await primaries() == {1: True, 2: True, 3: False}
    assert elsewhere["display_id"] == 2


# -- onboardings -----------------------------------------------------------------------------


@pytest.mark.parametrize("reference", ["id", "display_id", "display_id_text"])
async def test_onboarding_customer_id_accepts_id_or_display_id(
    http: aiohttp.ClientSession, timed: Sandbox, reference: str
) -> None:
    await create(http, timed, "/customers", {"name": "First"})
    customer = await create(http, timed, "/customers", {"name": "Acme"})
    given: object = {"id": customer["id"], "display_id": 2, "display_id_text": "2"}[reference]
    onboarding = await create(http, timed, "/onboardings", {"customer_id": given})
    assert onboarding == {
        "object": "onboarding",
        "id": onboarding["id"],
        "display_id": 1,
        "customer_id": customer["id"],
        "name": None,
        "phase": "before_getting_started",
        "state": "active",
        "target_launch_date": None,
        "notes": None,
        "csm_id": None,
        "se_id": None,
        "designer_id": None,
        "product_ops_id": None,
        "template_id": None,
        "waiting_on_customer": False,
        "reminders_enabled": True,
        "reminder_frequency_days": 1,
        "started_at": None,
        "completed_at": None,
        "livemode": True,
        "created_at": CREATED_AT,
        "updated_at": CREATED_AT,
    }


async def test_onboarding_normalises_target_launch_date(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    onboarding = await create(
        http,
        sandbox,
        "/onboardings",
        {"customer_id": 1, "target_launch_date": "2026-07-01T12:00:00+02:00"},
    )
    assert onboarding["target_launch_date"] == "2026-07-01T10:00:00.000Z"


async def test_moving_to_completed_sets_completed_at(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    await create(http, timed, "/customers", {"name": "Acme"})
    onboarding = await create(
        http, timed, "/onboardings", {"customer_id": 1, "state": "paused", "notes": "n"}
    )
    assert onboarding["completed_at"] is None
    clock.advance(3600)
    answer = await api(http, timed, "PATCH", "/onboardings/1", json={"phase": "completed"})
    assert answer.status == 200
    done = answer.body
    assert done["phase"] == "completed"
    assert done["completed_at"] == done["updated_at"] == "2026-05-26T18:21:09.412Z"
    assert (done["state"], done["notes"], done["created_at"]) == ("paused", "n", CREATED_AT)


async def test_patch_may_set_any_phase(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    await create(http, sandbox, "/onboardings", {"customer_id": 1})
    for phase in ("launch", "program_design", "internal_qa", "before_getting_started"):
        answer = await api(http, sandbox, "PATCH", "/onboardings/1", json={"phase": phase})
        assert (answer.status, answer.body["phase"]) == (200, phase)


async def test_onboarding_for_unknown_customer_is_not_found(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    for given in (1, "1", "cnope0000000000000000000"):
        answer = await api(http, sandbox, "POST", "/onboardings", json={"customer_id": given})
        assert_error(answer, 404, "not_found", "customer_not_found")


# -- livemode --------------------------------------------------------------------------------


async def test_objects_created_with_a_test_key_have_livemode_false(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    customer = await create(http, sandbox, "/customers", {"name": "Acme"}, key=TEST_KEY)
    contact = await create(
        http, sandbox, "/customers/1/contacts", {"name": "B", "email": "b@x.test"}, key=TEST_KEY
    )
    onboarding = await create(http, sandbox, "/onboardings", {"customer_id": 1}, key=TEST_KEY)
    assert [customer["livemode"], contact["livemode"], onboarding["livemode"]] == [False] * 3
    seen_live = await api(http, sandbox, "GET", f"/customers/{customer['id']}", key=LIVE_KEY)
    assert seen_live.body == customer
    live = await create(http, sandbox, "/customers", {"name": "Live"}, key=LIVE_KEY)
    assert (live["livemode"], live["display_id"]) == (True, 2)


# -- not found -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/customers/{ref}", "customer_not_found"),
        ("PATCH", "/customers/{ref}", "customer_not_found"),
        ("DELETE", "/customers/{ref}", "customer_not_found"),
        ("GET", "/customers/{ref}/contacts", "customer_not_found"),
        ("POST", "/customers/{ref}/contacts", "customer_not_found"),
        ("GET", "/customers/{ref}/onboardings", "customer_not_found"),
        ("GET", "/contacts/{ref}", "contact_not_found"),
        ("PATCH", "/contacts/{ref}", "contact_not_found"),
        ("DELETE", "/contacts/{ref}", "contact_not_found"),
        ("GET", "/onboardings/{ref}", "onboarding_not_found"),
        ("PATCH", "/onboardings/{ref}", "onboarding_not_found"),
        ("DELETE", "/onboardings/{ref}", "onboarding_not_found"),
    ],
)
@pytest.mark.parametrize("ref", ["2", "cnope0000000000000000000"])
async def test_unknown_objects_are_not_found(
    http: aiohttp.ClientSession, sandbox: Sandbox, method: str, path: str, code: str, ref: str
) -> None:
    await _family(http, sandbox)
    body = {"name": "X", "email": "x@x.test"} if method in ("POST", "PATCH") else None
    answer = await api(http, sandbox, method, path.format(ref=ref), json=body)
    assert_error(answer, 404, "not_found", code)


async def test_a_slug_is_not_an_id(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    answer = await api(http, sandbox, "GET", "/customers/acme")
    assert_error(answer, 404, "not_found", "customer_not_found")


async def test_a_huge_display_id_is_not_found(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    answer = await api(http, sandbox, "GET", "/customers/99999999999999999999999")
    assert_error(answer, 404, "not_found", "customer_not_found")


async def test_unicode_digits_are_not_a_display_id(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    answer = await api(http, sandbox, "GET", "/customers/%C2%B2")
    assert_error(answer, 404, "not_found", "customer_not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/contacts"),
        ("POST", "/contacts"),
        ("GET", "/customers/1/notes"),
        ("GET", "/customers/"),
    ],
)
async def test_unknown_routes_are_route_not_found(
    http: aiohttp.ClientSession, sandbox: Sandbox, method: str, path: str
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    body = {"name": "X"} if method == "POST" else None
    answer = await api(http, sandbox, method, path, json=body)
    assert_error(answer, 404, "not_found", "route_not_found")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/contacts", 404, "route_not_found"),
        ("PATCH", "/customers", 405, "method_not_allowed"),
    ],
)
async def test_route_errors_do_not_depend_on_the_body(
    http: aiohttp.ClientSession, sandbox: Sandbox, method: str, path: str, status: int, code: str
) -> None:
    answer = await api(http, sandbox, method, path)
    assert answer.status == status, answer.raw
    assert answer.error["code"] == code


async def test_routes_outside_the_api_prefix_are_route_not_found(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    root = sandbox.base_url.removesuffix("/api/v1")
    async with http.get(f"{root}/customers", headers={"Authorization": f"Bearer {LIVE_KEY}"}) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "route_not_found"
