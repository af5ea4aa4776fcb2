"""Small request helpers for the sandbox tests: one real HTTP call, one parsed answer."""

from __future__ import annotations

import json as jsonlib
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import polars as pl
from click.testing import CliRunner, Result
from multidict import CIMultiDictProxy

from bulk.cli import main
from bulk.importing.importer import ImportOutcome
from bulk.sandbox import Sandbox
from bulk.schema import format_epoch_ms
from bulk.settings import ConnectionSettings, ImportSettings

LIVE_KEY = "pivotal_acme"
TEST_KEY = "pivotal_test_acme"
OTHER_KEY = "pivotal_globex"
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
EMPTY_LIST = {"object": "list", "data": [], "has_more": False, "next_cursor": None}

_UNSET: Any = object()
ANY_FIELD: Any = object()
"""Pass as `field` to `assert_error` when the error's `field` is not checked."""


class ManualClock:
    """An epoch-seconds clock that moves only when told to (or by `tick` on every read)."""

    def __init__(self, start: float = 1_780_000_000.0, tick: float = 0.0) -> None:
        self.now = start
        self.tick = tick

    def __call__(self) -> float:
        value = self.now
        self.now += self.tick
        return value

    def advance(self, seconds: float) -> None:
        self.now += seconds


def at_ms(clock: ManualClock, ms: int) -> str:
    """Stop the clock at millisecond `ms` (the 0.4 ms keeps float truncation off the edge)."""
    clock.now = ms / 1000 + 0.0004
    return format_epoch_ms(ms)


def epoch_of(timestamp: str) -> float:
    """A clock value that the sandbox turns into exactly `timestamp` (no float truncation)."""
    moment = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return moment.timestamp() + 0.0004


def iso(epoch_s: float) -> str:
    """The API's rendering of a whole-millisecond epoch-seconds value."""
    moment = datetime.fromtimestamp(round(epoch_s * 1000) / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Answer:
    """A response, read completely: status, headers and the raw body bytes."""

    status: int
    headers: CIMultiDictProxy[str]
    raw: bytes

    @property
    def body(self) -> Any:
        return jsonlib.loads(self.raw)

    @property
    def error(self) -> dict[str, Any]:
        body = self.body
        assert set(body) == {"error"}, body
        error: dict[str, Any] = body["error"]
        return error


async def api(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    method: str,
    path: str,
    *,
    key: str | None = LIVE_KEY,
    json: Any = _UNSET,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Answer:
    """Send one request to `sandbox` (path relative to /api/v1) and read the whole answer."""
    sent: dict[str, str] = {}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    if json is not _UNSET:
        data = jsonlib.dumps(json).encode()
    if data is not None:
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    async with http.request(
        method, sandbox.base_url + path, data=data, headers=sent, params=params
    ) as response:
        return Answer(response.status, response.headers, await response.read())


async def create(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    path: str,
    body: Mapping[str, Any],
    *,
    key: str = LIVE_KEY,
) -> dict[str, Any]:
    """POST `body` and return the created object, insisting on 201."""
    answer = await api(http, sandbox, "POST", path, key=key, json=dict(body))
    assert answer.status == 201, answer.raw
    created: dict[str, Any] = answer.body
    return created


async def listed(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    path: str,
    *,
    key: str = LIVE_KEY,
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """GET one page of a list, insisting on 200 and the list envelope."""
    answer = await api(http, sandbox, "GET", path, key=key, params=params)
    assert answer.status == 200, answer.raw
    page: dict[str, Any] = answer.body
    assert set(page) == {"object", "data", "has_more", "next_cursor"}
    assert page["object"] == "list"
    return page


def display_ids(page: Mapping[str, Any]) -> list[int]:
    return [row["display_id"] for row in page["data"]]


def assert_error(
    answer: Answer, status: int, type_: str, code: str, field: Any = None
) -> dict[str, Any]:
    """The answer is exactly the API's error envelope with these values (`field` absent if None)."""
    assert answer.status == status, answer.raw
    assert answer.headers["Content-Type"].startswith("application/json")
    error = answer.error
    assert error["type"] == type_, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    allowed = {"type", "code", "message", "field"}
    assert set(error) <= allowed, error
    if field is not ANY_FIELD:
        if field is None:
            assert "field" not in error, error
        else:
            assert error.get("field") == field, error
    return error


def kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool]) -> bool:
    """SIGKILL a subprocess as soon as `ready()`; False if it ended first."""
    deadline = time.monotonic() + 60
    while not ready() and process.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.001)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return True


# -- imports of the samples ------------------------------------------------------------------

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
WORKSPACE = "acme"
KEY = f"pivotal_{WORKSPACE}"


def bulk(*arguments: str) -> Result:
    """`bulk ARGUMENTS` in-process; an exception escaping the CLI fails the test."""
    return CliRunner().invoke(main, list(arguments), catch_exceptions=False)


def against(sandbox: Sandbox) -> tuple[str, ...]:
    """The options that point a command at `sandbox` with the test key."""
    return ("--base-url", sandbox.base_url, "--api-key", KEY)


def import_settings(
    sandbox: Sandbox, tmp_path: Path, *folders: Path, **options: Any
) -> ImportSettings:
    connection = ConnectionSettings(api_key=KEY, base_url=sandbox.base_url, concurrency=4)
    return ImportSettings(
        connection=connection,
        folders=folders or (SAMPLES,),
        checkpoint=tmp_path / "import.sqlite",
        **{"quiet": True, **options},
    )


def source_rows(name: str, folder: Path = SAMPLES) -> list[dict[str, str | None]]:
    return pl.read_csv(folder / f"{name}.csv", infer_schema=False).to_dicts()


def assert_workspace_matches_samples(sandbox: Sandbox, folder: Path = SAMPLES) -> None:
    """Every source row exists exactly once, with its fields and under the right customer."""
    customers = sandbox.objects(WORKSPACE, "customer")
    contacts = sandbox.objects(WORKSPACE, "contact")
    onboardings = sandbox.objects(WORKSPACE, "onboarding")
    source_customers = source_rows("customers", folder)
    source_contacts = source_rows("contacts", folder)
    source_onboardings = source_rows("onboardings", folder)
    assert len(customers) == len(source_customers)
    assert len(contacts) == len(source_contacts)
    assert len(onboardings) == len(source_onboardings)

    by_external_id = {c["metadata"]["external_id"]: c for c in customers}
    assert set(by_external_id) == {row["external_id"] for row in source_customers}
    for row in source_customers:
        customer = by_external_id[row["external_id"]]
        assert customer["name"] == row["name"]
        assert customer["plan"] == row["plan"]
        if row["slug"]:
            assert customer["slug"] == row["slug"]
        if row["domain"]:
            assert customer["domain"] == row["domain"].lower()
        if row["mrr"]:
            assert customer["mrr"] == int(row["mrr"])

    contact_by_email = {(c["customer_id"], c["email"]): c for c in contacts}
    assert len(contact_by_email) == len(contacts)
    for row in source_contacts:
        parent = by_external_id[row["customer_external_id"]]
        assert row["email"] is not None
        contact = contact_by_email[(parent["id"], row["email"].lower())]
        assert contact["name"] == row["name"]
        assert contact["phone"] == row["phone"]

    onboarding_by_customer = {o["customer_id"]: o for o in onboardings}
    assert len(onboarding_by_customer) == len(onboardings)
    for row in source_onboardings:
        onboarding = onboarding_by_customer[by_external_id[row["customer_external_id"]]["id"]]
        assert onboarding["name"] == row["name"]
        assert onboarding["phase"] == (row["phase"] or "before_getting_started")


def counts(outcome: ImportOutcome, column: str) -> dict[str, int]:
    return {name: getattr(c, column) for name, c in outcome.summary.passes.items()}
