"""The sandbox as a second reading of pivotal-api.md: slugs, raw-byte replays, no extra limits.

Every expectation here is written out from the API page by hand, never computed by the code
under test (issue 9, items 11 and 12).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from helpers import LIVE_KEY, Answer, api, assert_error, create, listed

from bulk.sandbox import Sandbox
from bulk.sandbox.slugs import derive_slug

# -- slugs: "lowercased, every run of characters other than ASCII a-z0-9 — accented letters
#    included — becomes -, trimmed, cut to 64" -----------------------------------------------

DERIVED_SLUGS = [
    ("Café Müller", "caf-m-ller"),
    ("Café Crème, Inc.", "caf-cr-me-inc"),
    ("Ünïcödé GmbH", "n-c-d-gmbh"),
    ("São Paulo Ltda", "s-o-paulo-ltda"),
    ("Straße 7", "stra-e-7"),
    ("ÀÉÎ Corp", "corp"),
    ("\u212aelvin Labs", "elvin-labs"),  # the Kelvin sign is not ASCII K, whatever lower() says
    ("\u0130stanbul", "stanbul"),  # İ (dotted capital I) is not ASCII
    ("  Hello   World!! ", "hello-world"),
    ("ACME 2.0 (EU)", "acme-2-0-eu"),
    ("snake_case_name", "snake-case-name"),
    ("a--b", "a-b"),
    ("日本 2", "2"),
    ("a" * 70, "a" * 64),
    ("x" * 63 + " y", "x" * 63),  # the cut leaves a trailing '-': trimmed too
    ("x" * 64 + "-y", "x" * 64),
    ("y" * 62 + "é" + "zz", "y" * 62 + "-z"),
]


@pytest.mark.parametrize(("name", "slug"), DERIVED_SLUGS)
async def test_slug_is_derived_as_documented(
    http: aiohttp.ClientSession, sandbox: Sandbox, name: str, slug: str
) -> None:
    customer = await create(http, sandbox, "/customers", {"name": name})
    assert (customer["name"], customer["slug"]) == (name, slug)


@pytest.mark.parametrize(("name", "slug"), DERIVED_SLUGS)
def test_the_sandbox_derivation_matches_the_table(name: str, slug: str) -> None:
    assert derive_slug(name) == slug


@pytest.mark.parametrize("name", ["!!!", "日本", "ÉÉÉ", "---", " "])
async def test_a_name_that_leaves_no_slug_is_invalid_string_on_slug(
    http: aiohttp.ClientSession, sandbox: Sandbox, name: str
) -> None:
    answer = await api(http, sandbox, "POST", "/customers", json={"name": name})
    assert_error(answer, 400, "invalid_request_error", "invalid_string", "slug")
    given = await create(http, sandbox, "/customers", {"name": name, "slug": "named"})
    assert given["slug"] == "named"


async def test_an_accent_folded_guess_is_not_the_derived_slug(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    """A client that folds accents predicts `cafe-muller`; the API gives `caf-m-ller`."""
    folded = await create(http, sandbox, "/customers", {"name": "Cafe Muller"})
    derived = await create(http, sandbox, "/customers", {"name": "Café Müller"})
    assert (folded["slug"], derived["slug"]) == ("cafe-muller", "caf-m-ller")
    taken = await api(http, sandbox, "POST", "/customers", json={"name": "Caf Mller!"})
    assert taken.status == 201  # "caf-mller" is another slug
    clash = await api(http, sandbox, "POST", "/customers", json={"name": "CAF M LLER"})
    assert_error(clash, 409, "conflict", "slug_taken", "slug")


# -- idempotency: "a hash of the request body's bytes" -----------------------------------------


async def post_bytes(
    http: aiohttp.ClientSession, sandbox: Sandbox, path: str, raw: bytes, key: str
) -> Answer:
    return await api(
        http, sandbox, "POST", path, data=raw, headers={"Idempotency-Key": key}, key=LIVE_KEY
    )


async def test_a_replay_of_the_same_bytes_returns_the_stored_bytes(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    raw = b'{"name":"Acme","tags":["a"],"metadata":{"n":1}}'
    first = await post_bytes(http, sandbox, "/customers", raw, "key-1")
    assert first.status == 201
    assert "Idempotent-Replayed" not in first.headers
    replay = await post_bytes(http, sandbox, "/customers", raw, "key-1")
    assert (replay.status, replay.raw) == (201, first.raw)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len((await listed(http, sandbox, "/customers"))["data"]) == 1


@pytest.mark.parametrize(
    "respelled",
    [
        b'{"tags":["a"],"name":"Acme","metadata":{"n":1}}',  # keys in another order
        b'{"name":"Acme","tags":["a"],"metadata":{"n":1}}\n',  # a trailing newline
        b'{"name": "Acme", "tags": ["a"], "metadata": {"n": 1}}',  # other whitespace
        b'{"name":"Acm\\u0065","tags":["a"],"metadata":{"n":1}}',  # an escape for "e"
        b'{"name":"Acme","tags":["a"],"metadata":{"n":1.0}}',  # 1.0 for 1 (free JSON)
    ],
    ids=["reordered", "newline", "whitespace", "escape", "number"],
)
async def test_the_same_json_in_other_bytes_is_idempotency_key_reused(
    http: aiohttp.ClientSession, sandbox: Sandbox, respelled: bytes
) -> None:
    raw = b'{"name":"Acme","tags":["a"],"metadata":{"n":1}}'
    first = await post_bytes(http, sandbox, "/customers", raw, "key-1")
    assert first.status == 201
    reused = await post_bytes(http, sandbox, "/customers", respelled, "key-1")
    assert_error(reused, 409, "conflict", "idempotency_key_reused")
    assert "Idempotent-Replayed" not in reused.headers
    replay = await post_bytes(http, sandbox, "/customers", raw, "key-1")
    assert (replay.status, replay.raw) == (201, first.raw)
    assert len((await listed(http, sandbox, "/customers"))["data"]) == 1


async def test_a_reordered_onboarding_resend_is_refused(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    """Issue 9 item 2: the crash-resumed onboarding POST, serialized again in another order."""
    await create(http, sandbox, "/customers", {"name": "Acme"})
    first = await post_bytes(
        http, sandbox, "/onboardings", b'{"customer_id":1,"name":"Kickoff"}', "onb-1"
    )
    assert first.status == 201
    reused = await post_bytes(
        http, sandbox, "/onboardings", b'{"name":"Kickoff","customer_id":1}', "onb-1"
    )
    assert_error(reused, 409, "conflict", "idempotency_key_reused")
    contact_raw = b'{"name":"Bob","email":"bob@x.test"}'
    contact = await post_bytes(http, sandbox, "/customers/1/contacts", contact_raw, "c-1")
    again = await post_bytes(http, sandbox, "/customers/1/contacts", contact_raw, "c-1")
    assert (again.raw, again.headers["Idempotent-Replayed"]) == (contact.raw, "true")
    other = b'{"email":"bob@x.test","name":"Bob"}'
    reused = await post_bytes(http, sandbox, "/customers/1/contacts", other, "c-1")
    assert_error(reused, 409, "conflict", "idempotency_key_reused")


# -- validation no stricter than the page --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/customers/1/contacts", {"name": "N" * 300, "email": "long@x.test"}),
        ("/customers/1/contacts", {"name": "Al", "email": "a" * 300 + "@x.test"}),
        ("/customers/1/contacts", {"name": "Al", "email": "al@localhost"}),
        ("/customers/1/contacts", {"name": "Al", "email": "al+tag@x"}),
        ("/onboardings", {"customer_id": 1, "name": "O" * 300}),
    ],
    ids=["contact-name-300", "email-307", "email-no-dot", "email-plus", "onboarding-name-300"],
)
async def test_limits_the_page_does_not_state_are_not_enforced(
    http: aiohttp.ClientSession, sandbox: Sandbox, path: str, body: dict[str, Any]
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    created = await create(http, sandbox, path, body)
    for name, value in body.items():
        if name != "customer_id":
            assert created[name] == value


@pytest.mark.parametrize(
    "email", ["bob@", "@x.test", "no-at-sign", "a@b@x.test", "a b@x.test", "a@x .test", ""]
)
async def test_plainly_malformed_emails_are_invalid_string(
    http: aiohttp.ClientSession, sandbox: Sandbox, email: str
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    answer = await api(
        http, sandbox, "POST", "/customers/1/contacts", json={"name": "Al", "email": email}
    )
    assert_error(answer, 400, "invalid_request_error", "invalid_string", "email")


async def test_documented_limits_are_enforced(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    too_long = await api(http, sandbox, "POST", "/customers", json={"name": "n" * 201})
    assert_error(too_long, 400, "invalid_request_error", "too_big", "name")
    exact = await create(http, sandbox, "/customers", {"name": "n" * 200})
    assert exact["slug"] == "n" * 64
    slug = await api(http, sandbox, "POST", "/customers", json={"name": "A", "slug": "s" * 65})
    assert_error(slug, 400, "invalid_request_error", "too_big", "slug")
    mrr = await api(http, sandbox, "POST", "/customers", json={"name": "A", "mrr": -1})
    assert_error(mrr, 400, "invalid_request_error", "too_small", "mrr")


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-07-01T12:00:00+02:00", "2026-07-01T10:00:00.000Z"),
        ("2026-07-01T12:00Z", "2026-07-01T12:00:00.000Z"),
        ("2026-07-01T12:00:00.123456-0100", "2026-07-01T13:00:00.123Z"),
    ],
)
async def test_target_launch_date_takes_iso_8601_date_times(
    http: aiohttp.ClientSession, sandbox: Sandbox, given: str, stored: str
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    onboarding = await create(
        http, sandbox, "/onboardings", {"customer_id": 1, "target_launch_date": given}
    )
    assert onboarding["target_launch_date"] == stored


@pytest.mark.parametrize(
    "given", ["2026-07-01 12:00:00Z", "2026-07-01T12:00:00", "2026-07-01", "July 1st"]
)
async def test_target_launch_date_needs_t_time_and_zone(
    http: aiohttp.ClientSession, sandbox: Sandbox, given: str
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    answer = await api(
        http, sandbox, "POST", "/onboardings", json={"customer_id": 1, "target_launch_date": given}
    )
    assert_error(answer, 400, "invalid_request_error", "invalid_string", "target_launch_date")
