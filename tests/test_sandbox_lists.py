"""Lists: order, pagination (ties included), filters, soft delete and workspace isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from helpers import (
    EMPTY_LIST,
    OTHER_KEY,
    ManualClock,
    api,
    assert_error,
    create,
    display_ids,
    iso,
    listed,
)

from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox

START = 1_780_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest_asyncio.fixture
async def timed(clock: ManualClock) -> AsyncIterator[Sandbox]:
    """A sandbox on a manual clock, so that tests decide every `created_at`."""
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, clock=clock)
    async with running_sandbox(config) as running:
        yield running


async def _customers(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    clock: ManualClock,
    count: int,
    *,
    step: float = 1,
) -> None:
    """`count` customers, each created `step` seconds after the previous one."""
    for _ in range(count):
        clock.advance(step)
        await create(http, sandbox, "/customers", {"name": f"c{int(clock.now)}"})


@pytest.mark.parametrize(
    "path", ["/customers", "/onboardings", "/customers/1/contacts", "/customers/1/onboardings"]
)
async def test_an_empty_list_has_the_exact_shape(
    http: aiohttp.ClientSession, sandbox: Sandbox, path: str
) -> None:
    if path.startswith("/customers/1"):
        await create(http, sandbox, "/customers", {"name": "Acme"})
    answer = await api(http, sandbox, "GET", path)
    assert answer.status == 200
    assert answer.body == EMPTY_LIST


async def test_lists_are_newest_first(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    await _customers(http, timed, clock, 3)
    page = await listed(http, timed, "/customers")
    assert display_ids(page) == [3, 2, 1]
    assert [row["created_at"] for row in page["data"]] == [
        iso(START + 3),
        iso(START + 2),
        iso(START + 1),
    ]
    assert (page["has_more"], page["next_cursor"]) == (False, None)


async def test_default_limit_is_20(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    await _customers(http, timed, clock, 21)
    first = await listed(http, timed, "/customers")
    assert display_ids(first) == list(range(21, 1, -1))
    assert first["has_more"] is True
    assert first["next_cursor"] == first["data"][-1]["created_at"] == iso(START + 2)
    second = await listed(http, timed, "/customers", params={"cursor": first["next_cursor"]})
    assert display_ids(second) == [1]
    assert (second["has_more"], second["next_cursor"]) == (False, None)


async def test_a_full_last_page_has_no_more(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    await _customers(http, timed, clock, 3)
    page = await listed(http, timed, "/customers", params={"limit": "3"})
    assert display_ids(page) == [3, 2, 1]
    assert (page["has_more"], page["next_cursor"]) == (False, None)


async def test_walking_pages_with_next_cursor(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    await _customers(http, timed, clock, 5)
    pages = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await listed(http, timed, "/customers", params=params)
        pages.append(display_ids(page))
        cursor = page["next_cursor"]
        if not page["has_more"]:
            assert cursor is None
            break
        assert cursor == page["data"][-1]["created_at"]
    assert pages == [[5, 4], [3, 2], [1]]


async def test_the_cursor_returns_strictly_older_rows(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    await _customers(http, timed, clock, 4)
    third = (await api(http, timed, "GET", "/customers/3")).body
    page = await listed(http, timed, "/customers", params={"cursor": third["created_at"]})
    assert display_ids(page) == [2, 1]
    between = iso(START + 2.5)
    assert display_ids(await listed(http, timed, "/customers", params={"cursor": between})) == [
        2,
        1,
    ]
    oldest = await listed(http, timed, "/customers", params={"cursor": iso(START + 1)})
    assert oldest == EMPTY_LIST


async def test_rows_tied_with_the_page_boundary_are_skipped(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    """Five customers share one millisecond and a page boundary falls inside the group."""
    await _customers(http, timed, clock, 3)  # display_id 1..3, distinct times
    clock.advance(1)
    tied_at = iso(clock.now)
    for index in range(5):  # display_id 4..8, one timestamp
        await create(http, timed, "/customers", {"name": f"tied {index}"})
    await _customers(http, timed, clock, 2)  # display_id 9, 10
    tied = await listed(http, timed, "/customers", params={"limit": "100"})
    assert display_ids(tied) == [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert {row["created_at"] for row in tied["data"][2:7]} == {tied_at}

    first = await listed(http, timed, "/customers", params={"limit": "4"})
    assert display_ids(first) == [10, 9, 8, 7]
    assert (first["has_more"], first["next_cursor"]) == (True, tied_at)
    second = await listed(
        http, timed, "/customers", params={"limit": "4", "cursor": first["next_cursor"]}
    )
    assert display_ids(second) == [3, 2, 1]  # 6, 5 and 4 are skipped, as documented
    assert (second["has_more"], second["next_cursor"]) == (False, None)


async def test_rows_created_during_a_walk_are_not_seen(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    await _customers(http, timed, clock, 4)
    first = await listed(http, timed, "/customers", params={"limit": "2"})
    await _customers(http, timed, clock, 1)
    second = await listed(
        http, timed, "/customers", params={"limit": "2", "cursor": first["next_cursor"]}
    )
    assert (display_ids(first), display_ids(second)) == ([4, 3], [2, 1])


# -- filters ---------------------------------------------------------------------------------


async def test_customers_filter_by_status(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    for index, status in enumerate(["active", "churned", "active", "onboarding"]):
        clock.advance(1)
        await create(http, timed, "/customers", {"name": f"c{index}", "status": status})
    active = await listed(http, timed, "/customers", params={"status": "active"})
    assert display_ids(active) == [3, 1]
    churned = await listed(http, timed, "/customers", params={"status": "churned"})
    assert display_ids(churned) == [2]
    archived = await listed(http, timed, "/customers", params={"status": "archived"})
    assert archived == EMPTY_LIST
    paged = await listed(http, timed, "/customers", params={"status": "active", "limit": "1"})
    assert (display_ids(paged), paged["has_more"]) == ([3], True)


async def test_onboardings_filter_by_customer_state_and_phase(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    acme = await create(http, timed, "/customers", {"name": "Acme"})
    await create(http, timed, "/customers", {"name": "Globex"})
    rows = [
        (1, "active", "review"),
        (2, "paused", "review"),
        (1, "paused", "launch"),
        (2, "active", "launch"),
        (1, "active", "launch"),
    ]
    for customer, state, phase in rows:
        clock.advance(1)
        await create(
            http, timed, "/onboardings", {"customer_id": customer, "state": state, "phase": phase}
        )

    async def ids(**params: str) -> list[int]:
        return display_ids(await listed(http, timed, "/onboardings", params=params))

    assert await ids() == [5, 4, 3, 2, 1]
    assert await ids(customer_id=acme["id"]) == [5, 3, 1]
    assert await ids(customer_id="1") == [5, 3, 1]
    assert await ids(customer_id="2") == [4, 2]
    assert await ids(customer_id="3") == []
    assert await ids(customer_id="cnope0000000000000000000") == []
    assert await ids(state="paused") == [3, 2]
    assert await ids(phase="launch") == [5, 4, 3]
    assert await ids(phase="launch", state="active", customer_id="1") == [5]
    nested = await listed(http, timed, "/customers/2/onboardings")
    assert display_ids(nested) == [4, 2]


async def test_contacts_list_per_customer(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    await create(http, timed, "/customers", {"name": "Acme"})
    await create(http, timed, "/customers", {"name": "Globex"})
    for customer in (1, 2, 1):
        clock.advance(1)
        await create(
            http,
            timed,
            f"/customers/{customer}/contacts",
            {"name": "X", "email": f"x{clock.now}@x.test"},
        )
    assert display_ids(await listed(http, timed, "/customers/1/contacts")) == [3, 1]
    assert display_ids(await listed(http, timed, "/customers/2/contacts")) == [2]


# -- soft delete -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("collection", "list_path", "code"),
    [
        ("customers", "/customers", "customer_not_found"),
        ("contacts", "/customers/1/contacts", "contact_not_found"),
        ("onboardings", "/onboardings", "onboarding_not_found"),
    ],
)
async def test_soft_delete_hides_the_row(
    http: aiohttp.ClientSession,
    timed: Sandbox,
    clock: ManualClock,
    collection: str,
    list_path: str,
    code: str,
) -> None:
    await create(http, timed, "/customers", {"name": "Acme"})
    await create(http, timed, "/customers", {"name": "Globex"})
    for email in ("a@x.test", "b@x.test"):
        await create(http, timed, "/customers/1/contacts", {"name": "A", "email": email})
    for _ in range(2):
        await create(http, timed, "/onboardings", {"customer_id": 1})
    clock.advance(1)
    target = (await api(http, timed, "GET", f"/{collection}/2")).body

    deleted = await api(http, timed, "DELETE", f"/{collection}/2")
    assert deleted.status == 200
    assert deleted.body == {
        "object": "deleted",
        "id": target["id"],
        "display_id": 2,
        "deleted": True,
    }
    for ref in ("2", target["id"]):
        assert_error(await api(http, timed, "GET", f"/{collection}/{ref}"), 404, "not_found", code)
        patched = await api(http, timed, "PATCH", f"/{collection}/{ref}", json={"name": "Z"})
        assert_error(patched, 404, "not_found", code)
    assert display_ids(await listed(http, timed, list_path)) == [1]
    again = await api(http, timed, "DELETE", f"/{collection}/{target['id']}")
    assert (again.status, again.raw) == (200, deleted.raw)
    assert (await api(http, timed, "DELETE", f"/{collection}/2")).raw == deleted.raw


async def test_display_ids_are_not_reused_after_delete(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    await create(http, sandbox, "/customers", {"name": "A"})
    await create(http, sandbox, "/customers", {"name": "B"})
    assert (await api(http, sandbox, "DELETE", "/customers/2")).status == 200
    assert (await create(http, sandbox, "/customers", {"name": "C"}))["display_id"] == 3


async def test_a_deleted_customers_children_leave_every_list(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    acme = await create(http, timed, "/customers", {"name": "Acme"})
    await create(http, timed, "/customers", {"name": "Globex"})
    for customer in (1, 2):
        clock.advance(1)
        await create(
            http, timed, f"/customers/{customer}/contacts", {"name": "X", "email": "x@x.test"}
        )
        await create(http, timed, "/onboardings", {"customer_id": customer})
    assert display_ids(await listed(http, timed, "/onboardings")) == [2, 1]

    assert (await api(http, timed, "DELETE", "/customers/1")).status == 200
    assert display_ids(await listed(http, timed, "/onboardings")) == [2]
    by_customer = await listed(http, timed, "/onboardings", params={"customer_id": acme["id"]})
    assert by_customer == EMPTY_LIST
    by_display = await listed(http, timed, "/onboardings", params={"customer_id": "1"})
    assert by_display == EMPTY_LIST
    for path in ("/customers/1/contacts", f"/customers/{acme['id']}/onboardings"):
        answer = await api(http, timed, "GET", path)
        assert_error(answer, 404, "not_found", "customer_not_found")
    assert display_ids(await listed(http, timed, "/customers/2/contacts")) == [2]
    assert display_ids(await listed(http, timed, "/customers/2/onboardings")) == [2]


# -- workspaces ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("collection", "code"),
    [
        ("customers", "customer_not_found"),
        ("contacts", "contact_not_found"),
        ("onboardings", "onboarding_not_found"),
    ],
)
async def test_another_workspace_cannot_touch_the_rows(
    http: aiohttp.ClientSession, sandbox: Sandbox, collection: str, code: str
) -> None:
    await create(http, sandbox, "/customers", {"name": "Acme"})
    await create(http, sandbox, "/customers", {"name": "Acme 2"})
    await create(http, sandbox, "/customers/2/contacts", {"name": "A", "email": "a@x.test"})
    await create(http, sandbox, "/customers/2/contacts", {"name": "B", "email": "b@x.test"})
    await create(http, sandbox, "/onboardings", {"customer_id": 2})
    await create(http, sandbox, "/onboardings", {"customer_id": 2})
    mine = (await api(http, sandbox, "GET", f"/{collection}/2")).body
    before = (await api(http, sandbox, "GET", f"/{collection}/2")).raw

    # Workspace B has one row of each kind: its own display_id 1.
    theirs_customer = await create(http, sandbox, "/customers", {"name": "Acme"}, key=OTHER_KEY)
    theirs = {
        "customers": theirs_customer,
        "contacts": await create(
            http,
            sandbox,
            "/customers/1/contacts",
            {"name": "A", "email": "a@x.test"},
            key=OTHER_KEY,
        ),
        "onboardings": await create(
            http, sandbox, "/onboardings", {"customer_id": 1}, key=OTHER_KEY
        ),
    }[collection]
    assert theirs["display_id"] == 1

    for ref in (mine["id"], "2"):
        for method in ("GET", "PATCH", "DELETE"):
            answer = await api(
                http, sandbox, method, f"/{collection}/{ref}", key=OTHER_KEY, json={"name": "Z"}
            )
            assert_error(answer, 404, "not_found", code)
    own = await api(http, sandbox, "GET", f"/{collection}/1", key=OTHER_KEY)
    assert own.body == theirs
    assert (await api(http, sandbox, "GET", f"/{collection}/2")).raw == before


async def test_another_workspace_cannot_attach_to_or_list_a_customer(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    acme = await create(http, sandbox, "/customers", {"name": "Acme"})
    await create(http, sandbox, "/customers/1/contacts", {"name": "A", "email": "a@x.test"})
    await create(http, sandbox, "/onboardings", {"customer_id": 1})
    ref = acme["id"]
    for method, path, body in (
        ("POST", f"/customers/{ref}/contacts", {"name": "B", "email": "b@x.test"}),
        ("GET", f"/customers/{ref}/contacts", None),
        ("GET", f"/customers/{ref}/onboardings", None),
        ("POST", "/onboardings", {"customer_id": ref}),
    ):
        answer = await api(http, sandbox, method, path, key=OTHER_KEY, json=body)
        assert_error(answer, 404, "not_found", "customer_not_found")
    for path in ("/customers", "/onboardings"):
        assert await listed(http, sandbox, path, key=OTHER_KEY) == EMPTY_LIST
    filtered = await listed(
        http, sandbox, "/onboardings", key=OTHER_KEY, params={"customer_id": ref}
    )
    assert filtered == EMPTY_LIST
    assert len((await listed(http, sandbox, "/customers/1/contacts"))["data"]) == 1
