"""The Pivotal API over aiohttp: one session, retries, rate limits, and errors as `bulk.errors`.

    async with PivotalClient(base_url, api_key) as client:
        created = await client.request("POST", "customers", json={...}, idempotency_key=key)
        async for customer in client.iterate("customers"):
            ...

Every attempt waits for a concurrency slot, then for the `RateGovernor`, then is sent. A 2xx
with a JSON object body is success. 429 pauses every worker (Retry-After) and retries; no response,
5xx or a garbled 2xx body (a proxy that cut it short) retries with backoff under the same
Idempotency-Key; any other 4xx is raised as `ApiStatusError`. A URL that answers as something
else than the API (an HTML page, a 404 on `/me`) raises `NotTheApiError` at once: retrying a
wrong URL only makes the user wait for the same answer. The client is tolerant, as the API
contract asks: unknown fields and enum values pass through untouched, and a missing or odd error
envelope still becomes an error.

The API key goes into the Authorization header and nowhere else: it is masked in `repr` and
scrubbed from any text the server sends back into an exception message.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp

from bulk._version import __version__
from bulk.api.estimate import Pace
from bulk.api.ratelimit import RateGovernor
from bulk.api.retry import RetryPolicy, parse_retry_after, wait_before_retry
from bulk.errors import (
    ApiError,
    ApiStatusError,
    AuthenticationError,
    BulkError,
    NoResponseError,
    NotTheApiError,
    RateLimitedError,
    RequestAbandoned,
    ServerError,
    UsageError,
)
from bulk.interrupts import StopRequest
from bulk.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CONCURRENCY,
    DEFAULT_HEADROOM_PERCENT,
    DEFAULT_TIMEOUT_S,
    ConnectionNames,
)

_log = logging.getLogger(__name__)
"""Retries at debug level: method, path and the error, which never holds the key."""

Clock = Callable[[], float]
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_RETRY = RetryPolicy()
MAX_MESSAGE_CHARS = 300
"""An error body that is not the API's envelope (a proxy's HTML page) is quoted this far."""
JSON_CONTENT_TYPE = "application/json"
HTML_CONTENT_TYPES = ("text/html", "application/xhtml+xml")
API_PATH_SUFFIX = "/api/v1"
"""How every base URL of the API ends; a URL without it reaches the web site, not the API."""
WAIT_SHOWN_FROM_S = 1.0
"""A rate-limit wait shorter than this is pacing, not worth a word on the progress bar."""


_BODY_ENCODER = jsonlib.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""One encoder for every request (`json.dumps` with options builds one a call)."""


def encode_body(document: Any) -> bytes:
    """A request body as JSON bytes: compact, UTF-8, keys in the order given."""
    return _BODY_ENCODER.encode(document).encode("utf-8")


@dataclass(frozen=True)
class ApiResponse:
    """A successful answer. `attempts` counts sends; `replayed` is an idempotent replay."""

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str]
    attempts: int
    replayed: bool


@dataclass
class ClientStats:
    """What this client did: HTTP requests actually sent, re-sends, and 429s received."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


class PivotalClient:
    """An async context manager holding one aiohttp session for a whole run."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate_limit: int | None = None,
        headroom_percent: float = DEFAULT_HEADROOM_PERCENT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        user_agent: str = f"bulk/{__version__}",
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        stop: StopRequest | None = None,
        names: ConnectionNames | None = None,
    ) -> None:
        if concurrency < 1:
            raise UsageError(f"--concurrency must be at least 1, not {concurrency}.")
        if rate_limit is not None and rate_limit < 1:
            raise UsageError(f"--rate-limit must be at least 1 request/min, not {rate_limit}.")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self.headroom_percent = headroom_percent
        self.timeout_s = timeout_s
        self.retry = retry
        self.user_agent = user_agent
        self.stats = ClientStats()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._governor: RateGovernor | None = None
        self._slots: asyncio.Semaphore | None = None
        self.names = names or ConnectionNames()
        """The options that set the key and URL: an error's remedy names them."""
        self.stop = stop
        """Once set, requests still waiting for a slot, the window or a retry are dropped."""
        self.latency_s: float | None = None
        """A moving average of round trips (send to answer read), once one was measured."""

    def __repr__(self) -> str:
        return (
            f"PivotalClient(base_url={self.base_url!r}, api_key={_mask(self._api_key)!r}, "
            f"concurrency={self.concurrency})"
        )

    def pace(self) -> Pace:
        """What the governor knows now, for an estimate of how long requests will take."""
        governor = self.governor
        in_window, oldest_leaves_in_s = governor.counted()
        return Pace(
            limit=governor.limit,
            window_s=governor.window_s,
            latency_s=self.latency_s or 0.0,
            concurrency=self.concurrency,
            in_window=in_window,
            reset_in_s=oldest_leaves_in_s or 0.0,
        )

    def waiting_status(self) -> str | None:
        """`waiting for the rate limit, 45 s` while the governor holds requests back."""
        if self._governor is None:
            return None
        wait_s = self._governor.waiting_s()
        if wait_s < WAIT_SHOWN_FROM_S:
            return None
        return f"waiting for the rate limit, {math.ceil(wait_s)} s"

    @property
    def governor(self) -> RateGovernor:
        """The rate governor of the open client (for progress displays and benchmarks)."""
        if self._governor is None:
            raise RuntimeError("PivotalClient is not open; use 'async with PivotalClient(...)'")
        return self._governor

    async def __aenter__(self) -> Self:
        # Everything loop-bound is created here, inside the running loop, never in __init__.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={
                "Authorization": f"Bearer {self._api_key}",
                "User-Agent": self.user_agent,
                "Accept": "application/json",
            },
        )
        self._governor = RateGovernor(
            ceiling_per_min=self.rate_limit,
            headroom_percent=self.headroom_percent,
            clock=self._clock,
            sleep=self._sleep,
        )
        self._slots = asyncio.Semaphore(self.concurrency)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = self._governor = self._slots = None

    # -- requests ----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> ApiResponse:
        """Send one API request, retrying what can be retried; raise what cannot.

        The body is `body`, JSON bytes sent exactly as given (what a resend after a crash must
        do: the API may compare bytes), or `json` serialized once by `encode_body`; every retry
        sends the same bytes. A POST without a key gets a random one, so that at least this
        call's own retries cannot create twice; callers that must survive a crash pass a key
        derived from the row.
        """
        if idempotency_key is None and method.upper() == "POST":
            idempotency_key = f"bulk-{uuid.uuid4()}"
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
        if body is None and json is not None:
            body = encode_body(json)
        if body is not None:
            headers["Content-Type"] = JSON_CONTENT_TYPE
        url = f"{self.base_url}/{path.lstrip('/')}"
        attempts = failures = refusals = 0
        while True:
            attempts += 1
            if attempts > 1:
                self.stats.retries += 1
            try:
                return await self._attempt(method, url, body, params, headers, attempts)
            except RequestAbandoned:
                raise
            except ApiError as error:
                if isinstance(error, RateLimitedError):
                    refusals += 1
                    self.stats.rate_limited += 1
                else:
                    failures += 1
                kind_count = refusals if isinstance(error, RateLimitedError) else failures
                wait = wait_before_retry(kind_count, error, self.retry, self._rng)
                if wait is None:
                    error.attempts = attempts
                    raise
                _log.debug("%s %s: %s; retrying in %.2f s", method, path, error, wait)
                await self._unless_stopped(self._wait(error, wait), sent=True)

    async def _wait(self, error: ApiError, wait_s: float) -> None:
        """A 429 is about the key, so every worker pauses; other failures wait on their own."""
        if isinstance(error, RateLimitedError):
            self.governor.pause_until(self._clock() + wait_s)
        else:
            await self._sleep(wait_s)

    async def _attempt(
        self,
        method: str,
        url: str,
        body: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        attempts: int,
    ) -> ApiResponse:
        """One send: a concurrency slot, the governor's go-ahead, then the HTTP exchange."""
        session, governor, slots = self._open()
        if self.stop is not None and self.stop.is_set():
            raise RequestAbandoned(attempts > 1)
        if slots.locked():  # only a wait needs to race the stop (racing costs two tasks)
            await self._unless_stopped(slots.acquire(), sent=attempts > 1)
        else:
            await slots.acquire()
        try:
            if not governor.try_acquire():
                await self._unless_stopped(governor.acquire(), sent=attempts > 1)
            sent_at = self._clock()
            try:
                # No redirects: aiohttp would turn a redirected POST into a GET. A 3xx is
                # raised like any other status, pointing at a wrong base URL.
                async with session.request(
                    method, url, data=body, params=params, headers=headers, allow_redirects=False
                ) as response:
                    raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as error:
                if not isinstance(error, aiohttp.ClientConnectorError):
                    self.stats.requests += 1  # it left; whether it arrived is unknown
                raise translate_exception(error, method, url, self.timeout_s) from error
            self.stats.requests += 1
            self._measured(self._clock() - sent_at)
            governor.observe(response.headers, sent_at)
        finally:
            slots.release()
        return self._interpret(f"{method} {url}", response.status, response.headers, raw, attempts)

    async def _unless_stopped(self, waiting: Awaitable[T], *, sent: bool) -> T:
        """Wait for `waiting`, unless a stop comes first: then raise `RequestAbandoned`.

        What is waited for here (a concurrency slot, the rate window, a retry's backoff) comes
        before a send: dropping it sends nothing. `sent` says whether an earlier attempt left.
        """
        if self.stop is None:
            return await waiting
        if self.stop.is_set():
            _close(waiting)
            raise RequestAbandoned(sent)
        wanted = asyncio.ensure_future(waiting)
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait((wanted, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if wanted.done():
            return wanted.result()
        wanted.cancel()
        with suppress(asyncio.CancelledError):
            await wanted
        raise RequestAbandoned(sent)

    def _measured(self, round_trip_s: float) -> None:
        previous = self.latency_s
        self.latency_s = round_trip_s if previous is None else 0.8 * previous + 0.2 * round_trip_s

    def _interpret(
        self, where: str, status: int, headers: Mapping[str, str], raw: bytes, attempts: int
    ) -> ApiResponse:
        """Turn an HTTP answer into an `ApiResponse` or the matching `ApiStatusError`."""
        if 200 <= status < 300:
            body = _json_object(raw)
            if body is None and _is_html(headers, raw):
                raise self.not_the_api(where, "answered with an HTML page")
            if body is None:
                raise NoResponseError(f"{where}: {status} with a body that is not a JSON object.")
            replayed = headers.get("Idempotent-Replayed", "").strip().lower() == "true"
            return ApiResponse(status, body, headers, attempts, replayed)
        raise self._status_error(status, headers, raw)

    def _status_error(self, status: int, headers: Mapping[str, str], raw: bytes) -> ApiStatusError:
        """The API's error envelope as an exception; a missing or odd envelope is tolerated."""
        error = (_json_object(raw) or {}).get("error")
        fields = error if isinstance(error, dict) else {}
        text = raw.decode("utf-8", "replace").strip()[:MAX_MESSAGE_CHARS]
        message = _text(fields.get("message")) or text or f"HTTP {status}"
        if 300 <= status < 400 and headers.get("Location"):
            message = f"redirected to {headers['Location']}"
        error_type = _text(fields.get("type")) or "unknown"
        code = _text(fields.get("code")) or f"http_{status}"
        field = _text(fields.get("field"))
        retry_after = None
        if status == 429:
            retry_after = _parse_retry_after(headers.get("Retry-After"), self._clock())
        error_class = status_error_class(status)
        error = error_class(status, error_type, code, self._scrub(message), field, retry_after)
        if isinstance(error, AuthenticationError):
            error.remedy = f"Check {self.names.key_source}."
        return error

    def not_the_api(self, where: str, answered: str) -> NotTheApiError:
        """`GET …/me answered 404 route_not_found, not the Pivotal API: is this the API URL?`"""
        return NotTheApiError(
            f"{where} {answered}, not the Pivotal API: is this the API URL?",
            f"It should end in {API_PATH_SUFFIX}, like {DEFAULT_BASE_URL} "
            f"(check {self.names.url_source}).",
        )

    def _scrub(self, text: str) -> str:
        """Belt and braces: a server that echoes the key back does not get it into our errors."""
        return text.replace(self._api_key, _mask(self._api_key)) if self._api_key else text

    def _open(self) -> tuple[aiohttp.ClientSession, RateGovernor, asyncio.Semaphore]:
        if self._session is None or self._governor is None or self._slots is None:
            raise RuntimeError("PivotalClient is not open; use 'async with PivotalClient(...)'")
        return self._session, self._governor, self._slots

    # -- conveniences ------------------------------------------------------------------------

    async def iterate(
        self, path: str, params: Mapping[str, str] | None = None, *, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object of a list, newest first, page by page along `next_cursor`.

        A plain walk: rows sharing a page boundary's `created_at` can be skipped (see the API's
        pagination notes); an exporter that must see every row needs more than this.
        """
        query = {**(params or {}), "limit": str(page_size)}
        while True:
            page = (await self.request("GET", path, params=query)).body
            for item in page.get("data") or []:
                if isinstance(item, dict):
                    yield item
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not isinstance(cursor, str) or not cursor:
                return
            query["cursor"] = cursor

    def page_fetcher(self, path: str) -> Callable[[Mapping[str, str]], Awaitable[dict[str, Any]]]:
        """A function GETting one page of the list at `path` for given query parameters: what
        a tie-safe walk (`bulk.exporting.walker.walk`) pages with."""

        async def fetch(params: Mapping[str, str]) -> dict[str, Any]:
            return (await self.request("GET", path, params=params)).body

        return fetch

    async def me(self) -> dict[str, Any]:
        """The key and workspace the client talks as (`GET /me`).

        Every command asks this first, so it is where a wrong base URL shows: `/me` always
        exists under the API's root, and the API never redirects, so a 404 or a redirect means
        the URL does not point at that root (`http://` for `https://`, a missing `/api/v1`).
        """
        try:
            return (await self.request("GET", "me")).body
        except ApiStatusError as error:
            if error.status == 404:
                answered = f"answered 404 {error.code}"
            elif 300 <= error.status < 400:
                answered = f"answered {error.status}, {error.api_message}"
            else:
                raise
            raise self.not_the_api(f"GET {self.base_url}/me", answered) from error


def status_error_class(status: int) -> type[ApiStatusError]:
    """The `ApiStatusError` subclass for an error status: 401, 429, 5xx or any other."""
    if status == 401:
        return AuthenticationError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return ServerError
    return ApiStatusError


def translate_exception(error: BaseException, method: str, url: str, timeout_s: float) -> BulkError:
    """The one place aiohttp's exceptions become `bulk.errors`; messages carry no key.

    The first rule of `TRANSLATIONS` whose classes match decides; a class that a newer aiohttp
    adds outside them is still a `NoResponseError` (tests/test_client_errors.py finds it).
    """
    where = f"{method} {url}"
    for classes, translate in TRANSLATIONS:
        if isinstance(error, classes):
            return translate(error, where, url, timeout_s)
    return NoResponseError(f"{where}: {type(error).__name__}.")


def _redirected(error: Exception, where: str, url: str, timeout_s: float) -> BulkError:
    return UsageError(f"{where} was redirected; the API does not redirect.", "Check --base-url.")


def _invalid_url(error: Exception, where: str, url: str, timeout_s: float) -> BulkError:
    return UsageError(f"The API URL is not valid: {url}.", "Check --base-url.")


def _timed_out(error: Exception, where: str, url: str, timeout_s: float) -> BulkError:
    return NoResponseError(f"{where}: no answer within {timeout_s:g} s.")


def _not_connected(
    error: aiohttp.ClientConnectorError, where: str, url: str, timeout_s: float
) -> BulkError:
    return NoResponseError(f"{where}: could not connect to {error.host}:{error.port}.")


def _dropped(error: Exception, where: str, url: str, timeout_s: float) -> BulkError:
    return NoResponseError(f"{where}: the connection dropped before the answer was complete.")


def _bad_answer(
    error: aiohttp.ClientResponseError, where: str, url: str, timeout_s: float
) -> BulkError:
    """An answer aiohttp refused (a proxy's error status, a redirect loop): like any status."""
    if error.status is None or not 300 <= error.status < 600:
        return NoResponseError(f"{where}: an answer that could not be used.")
    message = error.message or f"HTTP {error.status}"
    return status_error_class(error.status)(
        error.status, "unknown", f"http_{error.status}", message
    )


def _connection_failed(error: Exception, where: str, url: str, timeout_s: float) -> BulkError:
    return NoResponseError(f"{where}: the connection failed ({type(error).__name__}).")


def _since_aiohttp_3_10(*names: str) -> tuple[type[Exception], ...]:
    """Classes newer than the oldest aiohttp we support: those this one has."""
    return tuple(getattr(aiohttp, name) for name in names if hasattr(aiohttp, name))


Translate = Callable[[Any, str, str, float], BulkError]
"""(error, "METHOD url", url, timeout_s) → the error to raise."""

TRANSLATIONS: tuple[tuple[tuple[type[BaseException], ...], Translate], ...] = (
    (_since_aiohttp_3_10("RedirectClientError"), _redirected),
    ((aiohttp.InvalidURL, *_since_aiohttp_3_10("NonHttpUrlClientError")), _invalid_url),
    ((TimeoutError,), _timed_out),  # aiohttp's ServerTimeoutError and its subclasses too
    ((aiohttp.ClientConnectorError,), _not_connected),  # DNS, proxy, TLS and certificate too
    (
        (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientOSError,
            ConnectionResetError,
            *_since_aiohttp_3_10("UploadAbortedError"),
        ),
        _dropped,
    ),
    ((aiohttp.ClientResponseError,), _bad_answer),
    ((aiohttp.ClientConnectionError,), _connection_failed),
)
"""aiohttp's exceptions by kind, in the order they are tried: subclasses before their bases."""


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = jsonlib.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _is_html(headers: Mapping[str, str], raw: bytes) -> bool:
    """A web page, by its Content-Type or by how it starts (`<!doctype html>`, `<html>`)."""
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type in HTML_CONTENT_TYPES:
        return True
    start = raw[:512].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _parse_retry_after(value: str | None, now_s: float) -> float | None:
    return parse_retry_after(value, datetime.fromtimestamp(now_s, UTC))


def _mask(api_key: str) -> str:
    """`pivotal_test_…` or `pivotal_…`: enough to tell live from test, nothing more."""
    for prefix in ("pivotal_test_", "pivotal_"):
        if api_key.startswith(prefix):
            return prefix + "…"
    return "…"


def _close(waiting: Awaitable[Any]) -> None:
    """Close a coroutine that will not be awaited (no 'never awaited' warning)."""
    if asyncio.iscoroutine(waiting):
        waiting.close()
