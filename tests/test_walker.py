"""`bulk.exporting.walker.walk` against a real sandbox on a manual clock: tie groups straddling page
boundaries, pages made of one timestamp split by the list filters, counted warnings for what
no filter can reach, rows created during a walk, and a walk resumed from its saved state."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import aiohttp
import pytest
from helpers import ManualClock, api, at_ms, create, listed

from bulk.exporting.exporter import CUSTOMER_SPLITS, ONBOARDING_SPLITS
from bulk.exporting.walker import PAGE_SIZE, Split, WalkState, WalkWarnings, walk
from bulk.sandbox import Sandbox
from bulk.schema import CUSTOMER_STATUSES, ONBOARDING_PHASES, ONBOARDING_STATES, format_epoch_ms

START_MS = 1_780_000_000_000


class Lister:
    """The walker's `fetch`: one real GET of a list, counted."""

    def __init__(self, http: aiohttp.ClientSession, sandbox: Sandbox, path: str) -> None:
        self.http, self.sandbox, self.path = http, sandbox, path
        self.calls: list[dict[str, str]] = []

    async def __call__(self, params: Mapping[str, str]) -> dict[str, Any]:
        self.calls.append(dict(params))
        return await listed(self.http, self.sandbox, self.path, params=params)


async def seed_customers(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    clock: ManualClock,
    groups: Sequence[int],
    *,
    start_ms: int = START_MS,
    statuses: Callable[[int], str] | None = None,
    ordered: bool = False,
) -> list[list[str]]:
    """Tie groups of customers, `groups` listed newest first (as the API lists them); group k
    shares one millisecond, one ms newer than the next group. Returns each group's ids, the
    groups newest first; with `ordered`, each group's ids in creation order (the API lists
    ties newest-created first), otherwise the group is created concurrently."""
    status_of = statuses or (lambda i: CUSTOMER_STATUSES[i % len(CUSTOMER_STATUSES)])
    created: list[list[str]] = []
    for offset, size in enumerate(reversed(groups)):
        at_ms(clock, start_ms + offset)
        bodies = [{"name": f"c{offset}-{i}", "status": status_of(i)} for i in range(size)]
        if ordered:
            group = [(await create(http, sandbox, "/customers", body))["id"] for body in bodies]
        else:
            made = await asyncio.gather(*(create(http, sandbox, "/customers", b) for b in bodies))
            group = [row["id"] for row in made]
        created.append(group)
    return list(reversed(created))


async def collect(
    fetch: Callable[[Mapping[str, str]], Awaitable[Mapping[str, Any]]],
    state: WalkState | None = None,
    *,
    splits: Sequence[Split] = (),
    warnings: WalkWarnings | None = None,
    label: str = "customers",
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async for page in walk(
        fetch, state or WalkState(), splits=splits, warnings=warnings, label=label
    ):
        rows += page
    return rows


def assert_exactly_once(rows: Sequence[Mapping[str, Any]], expected: set[str]) -> None:
    counts = Counter(str(row["id"]) for row in rows)
    duplicates = {row_id: n for row_id, n in counts.items() if n > 1}
    assert duplicates == {}
    assert len(set(counts) - expected) == 0, "rows that are not live"
    assert expected - set(counts) == set(), f"{len(expected - set(counts))} rows missing"


def live_ids(sandbox: Sandbox, object_name: str) -> set[str]:
    return {row["id"] for row in sandbox.objects("acme", object_name)}


def singles(count: int) -> list[int]:
    return [1] * count


_SHUFFLED = list(range(1, PAGE_SIZE + 1))
random.Random(20261124).shuffle(_SHUFFLED)

LAYOUTS = [
    pytest.param(
        # a 37 across the first boundary, a 100 across the second, a 99 across the third
        [*singles(80), 37, *singles(50), 100, 99, *singles(10)],
        id="37-100-99-crossing-boundaries",
    ),
    pytest.param(
        # ties at nearly every boundary: every page after the first starts inside a group
        [99, 100, 1, 100, 99, 2, 98, 100, 50, 50, 100, 3],
        id="99s-and-100s-back-to-back",
    ),
    pytest.param(
        # a group that starts exactly on a boundary, one ending on it, one page-sized run
        [*singles(100), 100, *singles(99), 1, 37, 63, 100, 64],
        id="groups-on-the-boundaries",
    ),
    pytest.param(list(range(1, PAGE_SIZE + 1)), id="every-size-1-to-100-ascending"),
    pytest.param(list(range(PAGE_SIZE, 0, -1)), id="every-size-100-to-1-descending"),
    pytest.param(_SHUFFLED, id="every-size-1-to-100-shuffled"),
]


@pytest.mark.parametrize("groups", LAYOUTS)
async def test_tie_groups_straddling_page_boundaries_are_walked_exactly_once(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock, groups: list[int]
) -> None:
    ids = await seed_customers(http, timed, clock, groups)
    assert sum(map(len, ids)) == sum(groups)
    fetch = Lister(http, timed, "/customers")
    warnings = WalkWarnings()

    rows = await collect(fetch, splits=CUSTOMER_SPLITS, warnings=warnings)

    assert_exactly_once(rows, live_ids(timed, "customer"))
    assert len(rows) == sum(groups)
    assert warnings.messages == []
    # newest first, as the API lists them: the walk neither reorders nor goes back in time
    stamps = [row["created_at"] for row in rows]
    assert stamps == sorted(stamps, reverse=True)


async def test_a_naive_cursor_walk_loses_rows_on_the_same_layout(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    """The control: following `next_cursor` as documented skips tied rows, which is what the
    walker exists to recover."""
    await seed_customers(http, timed, clock, [*singles(80), 37, *singles(50), 100, 99])
    seen: list[str] = []
    params: dict[str, str] = {"limit": "100"}
    while True:
        page = await listed(http, timed, "/customers", params=params)
        seen += [row["id"] for row in page["data"]]
        if not page["has_more"]:
            break
        params["cursor"] = page["next_cursor"]
    assert len(set(seen)) == len(seen) < 80 + 37 + 50 + 100 + 99


async def test_a_page_of_one_timestamp_is_split_by_status_without_warning(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    # 250 customers in one millisecond: 60/60/50/40/40 per status, each under a page
    spread = [*["onboarding"] * 60, *["active"] * 60, *["at_risk"] * 50]
    spread += [*["churned"] * 40, *["archived"] * 40]
    random.Random(7).shuffle(spread)
    await seed_customers(
        http, timed, clock, [*singles(30), 250, *singles(20)], statuses=spread.__getitem__
    )
    fetch = Lister(http, timed, "/customers")
    warnings = WalkWarnings()

    rows = await collect(fetch, splits=CUSTOMER_SPLITS, warnings=warnings)

    assert_exactly_once(rows, live_ids(timed, "customer"))
    assert len(rows) == 300
    assert warnings.messages == []
    statuses_asked = [call["status"] for call in fetch.calls if "status" in call]
    assert statuses_asked == list(CUSTOMER_STATUSES)


async def test_a_walk_of_only_one_timestamp_is_complete(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    await seed_customers(http, timed, clock, [250])  # the very first page is all one group
    warnings = WalkWarnings()

    rows = await collect(
        Lister(http, timed, "/customers"), splits=CUSTOMER_SPLITS, warnings=warnings
    )

    assert_exactly_once(rows, live_ids(timed, "customer"))
    assert warnings.messages == []


async def test_a_status_with_more_than_a_page_at_one_timestamp_is_a_counted_warning(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    spread = [*["onboarding"] * 130, *["active"] * 60, *["churned"] * 60]
    random.Random(11).shuffle(spread)
    ids = await seed_customers(
        http,
        timed,
        clock,
        [*singles(5), 250, *singles(10)],
        statuses=spread.__getitem__,
        ordered=True,
    )
    tie_ids = ids[5]  # in creation order
    tied_at = format_epoch_ms(START_MS + 10)
    fetch = Lister(http, timed, "/customers")
    warnings = WalkWarnings()

    rows = await collect(fetch, splits=CUSTOMER_SPLITS, warnings=warnings)

    assert warnings.messages == [
        f"100 or more customers with status=onboarding share created_at {tied_at}; the API "
        "cannot page through them: 100 were read, any more are missing"
    ]
    # the API lists ties newest-created first, so the 30 oldest-created onboarding customers
    # of the group are the ones no request can reach; everything else is there exactly once
    onboarding_in_group = [tie_ids[i] for i in range(250) if spread[i] == "onboarding"]
    unreachable = set(onboarding_in_group[:30])
    assert len(unreachable) == 30
    assert_exactly_once(rows, live_ids(timed, "customer") - unreachable)


async def test_onboardings_over_a_page_at_one_timestamp_split_by_state_then_phase(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    at_ms(clock, START_MS)
    customers = [
        (await create(http, timed, "/customers", {"name": f"c{i}"}))["id"] for i in range(3)
    ]
    # 260 onboardings in one millisecond: 'active' alone holds 150, so the state split still
    # fills a page and is split again by phase (50 each); the other states fit a page
    kinds = [
        *[("active", phase) for phase in ONBOARDING_PHASES[:3] for _ in range(50)],
        *[("paused", "review")] * 60,
        *[("waiting", ONBOARDING_PHASES[i % 7]) for i in range(50)],
    ]
    random.Random(3).shuffle(kinds)
    at_ms(clock, START_MS + 1)
    for i, (state, phase) in enumerate(kinds):
        body = {"customer_id": customers[i % 3], "state": state, "phase": phase}
        await create(http, timed, "/onboardings", body)
    at_ms(clock, START_MS + 2)
    for i in range(7):
        await create(http, timed, "/onboardings", {"customer_id": customers[0], "name": f"n{i}"})
    fetch = Lister(http, timed, "/onboardings")
    warnings = WalkWarnings()

    rows = await collect(fetch, splits=ONBOARDING_SPLITS, warnings=warnings, label="onboardings")

    assert_exactly_once(rows, live_ids(timed, "onboarding"))
    assert len(rows) == 267
    assert warnings.messages == []
    assert {call.get("state") for call in fetch.calls} >= set(ONBOARDING_STATES)
    assert [
        call["phase"] for call in fetch.calls if call.get("state") == "active" and "phase" in call
    ] == list(ONBOARDING_PHASES)


async def test_an_onboarding_state_and_phase_over_a_page_is_a_counted_warning(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    at_ms(clock, START_MS)
    customer = (await create(http, timed, "/customers", {"name": "Acme"}))["id"]
    at_ms(clock, START_MS + 1)
    created = []
    for i in range(140):
        state = "active" if i < 120 else "paused"
        body = {"customer_id": customer, "state": state, "phase": "review"}
        created.append((await create(http, timed, "/onboardings", body))["id"])
    warnings = WalkWarnings()

    rows = await collect(
        Lister(http, timed, "/onboardings"),
        splits=ONBOARDING_SPLITS,
        warnings=warnings,
        label="onboardings",
    )

    assert warnings.messages == [
        "100 or more onboardings with state=active, phase=review share created_at "
        f"{format_epoch_ms(START_MS + 1)}; the API cannot page through them: 100 were read, "
        "any more are missing"
    ]
    unreachable = set(created[:20])  # the 20 oldest-created active ones
    assert_exactly_once(rows, set(created) - unreachable)


async def test_contacts_over_a_page_at_one_timestamp_warn_without_splits(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    at_ms(clock, START_MS)
    customer = (await create(http, timed, "/customers", {"name": "Acme"}))["id"]
    path = f"/customers/{customer}/contacts"
    for i in range(105):
        await create(http, timed, path, {"name": f"p{i}", "email": f"p{i}@acme.com"})
    warnings = WalkWarnings()
    label = f"contacts of {customer}"

    rows = await collect(Lister(http, timed, path), warnings=warnings, label=label)

    assert len(rows) == 100  # the whole group is one millisecond: only one page can be read
    assert warnings.messages == [
        f"100 or more contacts of {customer} share created_at {format_epoch_ms(START_MS)}; "
        "the API cannot page through them: 100 were read, any more are missing"
    ]


async def test_rows_created_at_the_boundary_during_the_walk_are_picked_up(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    """Rows created during a walk shift it: one born in the boundary's millisecond after its
    page was read is found by the `boundary + 1 ms` re-read; one deleted before being read is
    absent, not an error."""
    ids = await seed_customers(http, timed, clock, [*singles(90), 30, *singles(100)])
    fetch = Lister(http, timed, "/customers")
    state = WalkState()
    rows: list[dict[str, Any]] = []
    late: dict[str, Any] = {}
    pages = 0
    async for page in walk(fetch, state, splits=CUSTOMER_SPLITS):
        rows += page
        pages += 1
        if pages == 1:
            assert state.cursor is not None and len(state.seen_at_cursor) == 10
            at_ms(clock, START_MS + 100)  # the 30-group's millisecond, now the boundary
            late = await create(http, timed, "/customers", {"name": "late"})
            gone = ids[-1][0]  # the oldest customer, not read yet
            assert (await api(http, timed, "DELETE", f"/customers/{gone}")).status == 200

    assert late["created_at"] == format_epoch_ms(START_MS + 100)
    assert_exactly_once(rows, live_ids(timed, "customer"))
    assert late["id"] in {row["id"] for row in rows}
    assert gone not in {row["id"] for row in rows}


@pytest.mark.parametrize(
    "groups",
    [
        pytest.param([*singles(80), 37, *singles(50), 100, 99, *singles(10)], id="ties"),
        pytest.param([*singles(30), 250, 99, 40], id="split-page"),
    ],
)
async def test_a_walk_resumes_from_its_saved_state_after_any_page(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock, groups: list[int]
) -> None:
    await seed_customers(http, timed, clock, groups)
    expected = live_ids(timed, "customer")
    whole = await collect(Lister(http, timed, "/customers"), splits=CUSTOMER_SPLITS)
    pages = 0
    async for _ in walk(Lister(http, timed, "/customers"), WalkState(), splits=CUSTOMER_SPLITS):
        pages += 1
    assert pages >= 4
    saw_ties_in_state = False

    for stop_after in range(1, pages):
        state = WalkState()
        before: list[dict[str, Any]] = []
        walker = cast(
            AsyncGenerator[list[dict[str, Any]], None],
            walk(Lister(http, timed, "/customers"), state, splits=CUSTOMER_SPLITS),
        )
        for _ in range(stop_after):
            before += await anext(walker)
        await walker.aclose()  # the process dies here; only the saved state survives
        saved = json.loads(json.dumps(state.to_json()))
        saw_ties_in_state |= len(saved["seen_at_cursor"]) > 1
        restored = WalkState.from_json(saved)
        assert restored == state

        resumed = Lister(http, timed, "/customers")
        after = await collect(resumed, restored, splits=CUSTOMER_SPLITS)

        assert_exactly_once(before + after, expected)
        assert [row["id"] for row in before + after] == [row["id"] for row in whole]
        assert resumed.calls[0].get("cursor") == saved["cursor"]  # no page read twice

    assert saw_ties_in_state


async def test_a_finished_state_walks_nothing(http: aiohttp.ClientSession, timed: Sandbox) -> None:
    fetch = Lister(http, timed, "/customers")
    state = WalkState.from_json({"cursor": None, "seen_at_cursor": [], "finished": True})
    assert await collect(fetch, state) == []
    assert fetch.calls == []
    assert WalkState.from_json(None) == WalkState()


async def test_an_empty_list_is_one_request(http: aiohttp.ClientSession, timed: Sandbox) -> None:
    fetch = Lister(http, timed, "/customers")
    state = WalkState()
    assert await collect(fetch, state) == []
    assert fetch.calls == [{"limit": "100"}]
    assert state.finished


class ShortPages:
    """The API as its docs allow it to be ("trust has_more, not the page size"): pages shorter
    than asked for. The rows and cursors are the sandbox's own; only the page is cut."""

    def __init__(self, inner: Lister, keep: int, budget: int = 60) -> None:
        self.inner, self.keep, self.budget = inner, keep, budget

    async def __call__(self, params: Mapping[str, str]) -> dict[str, Any]:
        self.budget -= 1
        if self.budget < 0:
            raise RuntimeError("the walk made no progress")
        page = await self.inner(params)
        if len(page["data"]) <= self.keep:
            return page
        data = page["data"][: self.keep]
        return {**page, "data": data, "has_more": True, "next_cursor": data[-1]["created_at"]}


async def test_short_pages_without_ties_are_walked_completely(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    await seed_customers(http, timed, clock, [*singles(120), 20, *singles(60)])
    fetch = ShortPages(Lister(http, timed, "/customers"), keep=50)

    rows = await collect(fetch, splits=CUSTOMER_SPLITS)

    assert_exactly_once(rows, live_ids(timed, "customer"))


async def test_a_short_page_of_one_timestamp_does_not_stall_the_walk(
    http: aiohttp.ClientSession, timed: Sandbox, clock: ManualClock
) -> None:
    await seed_customers(http, timed, clock, [*singles(30), 80, *singles(40)])
    fetch = ShortPages(Lister(http, timed, "/customers"), keep=50)

    rows = await collect(fetch, splits=CUSTOMER_SPLITS)

    assert_exactly_once(rows, live_ids(timed, "customer"))
