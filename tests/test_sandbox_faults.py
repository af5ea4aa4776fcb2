"""Injected faults (500s and dropped connections, before and after the commit) and persistence."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from helpers import LIVE_KEY, Answer, api, assert_error, create, listed

from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox

FAULT_KINDS = {"error_before", "drop_before", "error_after", "drop_after"}
MAX_ATTEMPTS = 30


async def until_answered(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    method: str,
    path: str,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[Answer, int]:
    """Retry on 500 and on lost connections; return the first other answer and the attempts."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            answer = await api(http, sandbox, method, path, json=json, headers=headers)
        except aiohttp.ClientConnectionError:  # ServerDisconnectedError, ClientOSError…
            continue
        if answer.status != 500:
            return answer, attempt
        assert_error(answer, 500, "internal_error", "internal_error")
    raise AssertionError(f"{method} {path} still failing after {MAX_ATTEMPTS} attempts")


async def all_rows(
    http: aiohttp.ClientSession, sandbox: Sandbox, path: str
) -> list[dict[str, Any]]:
    answer, _ = await until_answered(http, sandbox, "GET", f"{path}?limit=100")
    assert answer.status == 200
    rows: list[dict[str, Any]] = answer.body["data"]
    assert answer.body["has_more"] is False
    return rows


def after_commit(sandbox: Sandbox) -> int:
    return sandbox.stats.faults["error_after"] + sandbox.stats.faults["drop_after"]


async def test_idempotent_retries_survive_every_kind_of_fault(
    http: aiohttp.ClientSession,
) -> None:
    count = 40
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, fault_rate=0.3, fault_seed=7)
    async with running_sandbox(config) as sandbox:
        retried = 0
        for index in range(count):
            answer, attempts = await until_answered(
                http,
                sandbox,
                "POST",
                "/customers",
                json={"name": f"Customer {index}"},
                headers={"Idempotency-Key": f"import-{index}"},
            )
            assert answer.status == 201, answer.raw
            assert answer.body["name"] == f"Customer {index}"
            retried += attempts > 1
        stats = sandbox.stats
        assert set(stats.faults) == FAULT_KINDS
        assert retried > 0
        assert after_commit(sandbox) > 0
        # Every write that committed and then failed was answered by a replay on retry.
        assert stats.replays == after_commit(sandbox)

        rows = await all_rows(http, sandbox, "/customers")
        assert len(rows) == count
        assert sorted(row["name"] for row in rows) == sorted(f"Customer {i}" for i in range(count))
        assert sorted(row["display_id"] for row in rows) == list(range(1, count + 1))


async def test_without_a_key_an_after_commit_fault_makes_a_duplicate(
    http: aiohttp.ClientSession,
) -> None:
    count = 20
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, fault_rate=0.3, fault_seed=11)
    async with running_sandbox(config) as sandbox:
        customer, _ = await until_answered(
            http,
            sandbox,
            "POST",
            "/customers",
            json={"name": "Acme"},
            headers={"Idempotency-Key": "customer"},
        )
        assert customer.status == 201
        customer_replays = after_commit(sandbox)
        assert sandbox.stats.replays == customer_replays
        for index in range(count):
            answer, _ = await until_answered(
                http,
                sandbox,
                "POST",
                "/onboardings",
                json={"customer_id": customer.body["id"], "name": f"Onboarding {index}"},
            )
            assert answer.status == 201, answer.raw
        committed_then_failed = after_commit(sandbox) - customer_replays
        assert committed_then_failed > 0
        assert sandbox.stats.replays == customer_replays  # nothing to replay without a key

        rows = await all_rows(http, sandbox, "/onboardings")
        assert len(rows) == count + committed_then_failed
        copies = Counter(row["name"] for row in rows)
        assert set(copies) == {f"Onboarding {i}" for i in range(count)}
        assert sum(n - 1 for n in copies.values()) == committed_then_failed


async def test_a_fault_answers_500_internal_error_with_the_error_shape(
    http: aiohttp.ClientSession,
) -> None:
    config = SandboxConfig(rate_limit=50, test_rate_limit=0, fault_rate=1.0, fault_seed=3)
    async with running_sandbox(config) as sandbox:
        errors: list[Answer] = []
        for index in range(8):  # POST: aiohttp never re-sends it on its own after a drop
            try:
                answer = await api(http, sandbox, "POST", "/customers", json={"name": f"c{index}"})
            except aiohttp.ClientConnectionError:
                continue
            errors.append(answer)
        assert errors
        for answer in errors:
            assert_error(answer, 500, "internal_error", "internal_error")
            assert answer.headers["X-RateLimit-Limit"] == "50"
        assert sum(sandbox.stats.faults.values()) == sandbox.stats.requests == 8
        assert sandbox.stats.faults["error_before"] + sandbox.stats.faults["error_after"] == len(
            errors
        )


async def test_data_survives_a_restart_on_the_same_file(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, db_path=tmp_path / "sandbox.db")
    async with running_sandbox(config) as first:
        acme = await create(http, first, "/customers", {"name": "Acme"})
        await create(http, first, "/customers", {"name": "Globex"})
        await api(http, first, "DELETE", "/customers/2")
        contact = await create(
            http, first, "/customers/1/contacts", {"name": "Bob", "email": "bob@x.test"}
        )
        onboarding = await create(http, first, "/onboardings", {"customer_id": 1})
        stored = await api(
            http,
            first,
            "POST",
            "/customers",
            json={"name": "Initech"},
            headers={"Idempotency-Key": "key-1"},
        )
        before = await listed(http, first, "/customers")

    async with running_sandbox(config) as second:
        assert second.base_url != "" and await listed(http, second, "/customers") == before
        assert (await api(http, second, "GET", "/customers/1")).body == acme
        assert (await api(http, second, "GET", f"/contacts/{contact['id']}")).body == contact
        assert (await api(http, second, "GET", "/onboardings/1")).body == onboarding
        assert (await api(http, second, "GET", "/customers/2")).status == 404
        replay = await api(
            http,
            second,
            "POST",
            "/customers",
            json={"name": "Initech"},
            headers={"Idempotency-Key": "key-1"},
        )
        assert (replay.status, replay.raw) == (201, stored.raw)
        assert replay.headers["Idempotent-Replayed"] == "true"
        customer = await create(http, second, "/customers", {"name": "Hooli"})
        contact2 = await create(
            http, second, "/customers/1/contacts", {"name": "Al", "email": "al@x.test"}
        )
        onboarding2 = await create(http, second, "/onboardings", {"customer_id": 1})
        assert (customer["display_id"], contact2["display_id"], onboarding2["display_id"]) == (
            4,
            2,
            2,
        )
        globex = await create(http, second, "/customers", {"name": "Globex"})
        assert (globex["slug"], globex["display_id"]) == ("globex", 5)


async def test_latency_jitters_between_the_latency_and_the_latency_plus_jitter(
    http: aiohttp.ClientSession,
) -> None:
    config = SandboxConfig(rate_limit=0, latency_ms=20, latency_jitter_ms=30, fault_seed=7)
    async with running_sandbox(config) as sandbox:
        took = []
        for _ in range(20):
            started = time.monotonic()
            async with http.get(
                f"{sandbox.base_url}/me", headers={"Authorization": f"Bearer {LIVE_KEY}"}
            ) as response:
                assert response.status == 200
            took.append(time.monotonic() - started)
    assert min(took) >= 0.020
    assert max(took) - min(took) > 0.005  # drawn anew for each request, not one fixed delay
