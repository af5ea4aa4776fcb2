"""The sandbox's HTTP layer: routes, authentication, rate limits, idempotency, latency, faults.

Every authenticated request runs the same pipeline (`SandboxApp.serve`): authenticate the key,
count it against the key's sliding window, read and parse the body, claim the idempotency key,
wait the configured latency, maybe fail on purpose, then run the operation and store its
idempotent result in one transaction. Errors of every kind leave as the API's error envelope.

Idempotent replays compare the request body's **bytes**, as `pivotal-api.md` decides ("a hash of
the request body's bytes"): the stored hash is SHA-256 of the body exactly as received, so a
resend that parses to the same JSON but is spelled differently (keys in another order, other
whitespace or escapes) is `409 idempotency_key_reused`. A client must resend the bytes it sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from .config import IDEMPOTENCY_TTL_S, SandboxConfig
from .faults import Fault, FaultInjector
from .limits import SlidingWindowLimiter
from .problems import ApiProblem, conflict, internal_error, invalid, unauthenticated
from .resources import Caller, Resources
from .store import Record, Store, StoredResult, encode
from .timestamps import format_ms

API_PREFIX = "/api/v1"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
MAX_IDEMPOTENCY_KEY_BYTES = 255
_TEST_KEY = re.compile(r"^pivotal_test_([a-z0-9][a-z0-9-]*)$")
_LIVE_KEY = re.compile(r"^pivotal_([a-z0-9][a-z0-9-]*)$")


@dataclass
class SandboxStats:
    """What the sandbox has seen, for tests and benchmarks (counts, never keys)."""

    requests: int = 0
    """Authenticated requests admitted by the rate limiter."""
    rate_limited: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    replays: int = 0
    methods: Counter[str] = field(default_factory=Counter)
    """Admitted requests by HTTP method: writes are POST, PATCH and DELETE."""

    @property
    def writes(self) -> int:
        return self.methods["POST"] + self.methods["PATCH"] + self.methods["DELETE"]


@dataclass(frozen=True)
class Call:
    """One admitted request, as an operation sees it."""

    caller: Caller
    key_prefix: str
    key_id: str
    """A stable id derived from the whole key by a one-way hash (never the key)."""
    path: Mapping[str, str]
    query: Mapping[str, str]
    body: object
    now_ms: int


@dataclass(frozen=True)
class Reply:
    status: int
    text: str


Operation = Callable[[Call], Reply]


class SandboxApp:
    """The Pivotal API over one store, as an aiohttp application."""

    def __init__(self, config: SandboxConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.resources = Resources(store, extra_fields=config.extra_fields)
        self.limiter = SlidingWindowLimiter(config.window_s)
        self.faults = FaultInjector(config.fault_rate, config.fault_seed)
        self._jitter = random.Random(config.fault_seed)
        self.revoked_keys = set(config.revoked_keys)
        self.stats = SandboxStats()
        self._in_flight: set[tuple[str, str, str]] = set()
        store.forget_results_before(self._now_ms() - IDEMPOTENCY_TTL_S * 1000)

    def build(self) -> web.Application:
        app = web.Application(
            client_max_size=self.config.max_body_bytes, middlewares=[self._route_errors]
        )
        app.router.add_get(f"{API_PREFIX}/health", self._health)
        for method, path, operation in self._routes():
            app.router.add_route(method, f"{API_PREFIX}{path}", self._endpoint(operation))
        return app

    def _routes(self) -> list[tuple[str, str, Operation]]:
        api = self.resources
        routes: list[tuple[str, str, Operation]] = [
            ("GET", "/me", self._me),
            ("GET", "/customers", lambda c: _list(api.list(c.caller, "customer", c.query))),
            (
                "POST",
                "/customers",
                lambda c: _created(api.create_customer(c.caller, c.body, c.now_ms)),
            ),
            (
                "GET",
                "/customers/{ref}/contacts",
                lambda c: _list(
                    api.list(c.caller, "contact", c.query, customer_reference=c.path["ref"])
                ),
            ),
            (
                "POST",
                "/customers/{ref}/contacts",
                lambda c: _created(api.create_contact(c.caller, c.path["ref"], c.body, c.now_ms)),
            ),
            (
                "GET",
                "/customers/{ref}/onboardings",
                lambda c: _list(
                    api.list(c.caller, "onboarding", c.query, customer_reference=c.path["ref"])
                ),
            ),
            ("GET", "/onboardings", lambda c: _list(api.list(c.caller, "onboarding", c.query))),
            (
                "POST",
                "/onboardings",
                lambda c: _created(api.create_onboarding(c.caller, c.body, c.now_ms)),
            ),
        ]
        for object_name, collection in (
            ("customer", "customers"),
            ("contact", "contacts"),
            ("onboarding", "onboardings"),
        ):
            routes += _object_routes(api, object_name, collection)
        return routes

    # -- the pipeline ------------------------------------------------------------------------

    def _endpoint(
        self, operation: Operation
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self.serve(request, operation)

        return handler

    async def serve(self, request: web.Request, operation: Operation) -> web.StreamResponse:
        """Run one authenticated request through the whole pipeline."""
        admitted = self._admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        caller, key, headers = admitted
        try:
            response = await self._perform(request, caller, key, operation, headers)
        except ApiProblem as problem:
            response = _problem_response(problem, headers)
        self.stats.statuses[response.status] += 1
        return response

    def _admit(self, request: web.Request) -> tuple[Caller, str, dict[str, str]] | web.Response:
        """Authenticate and count against the key's window: the caller, or the refusal."""
        try:
            caller, key = self._authenticate(request)
        except ApiProblem as problem:
            self.stats.statuses[problem.status] += 1
            return _problem_response(problem, {})
        headers: dict[str, str] = {}
        limit = self.config.rate_limit if caller.livemode else self.config.test_rate_limit
        if limit > 0:
            decision = self.limiter.hit(key, limit, self.config.clock())
            headers = decision.headers()
            if not decision.allowed:
                self.stats.rate_limited += 1
                self.stats.statuses[429] += 1
                return _problem_response(_rate_limited(decision.retry_after_s), headers)
        self.stats.requests += 1
        self.stats.methods[request.method] += 1
        return caller, key, headers

    async def _perform(
        self,
        request: web.Request,
        caller: Caller,
        key: str,
        operation: Operation,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        raw, body = (
            await self._read_body(request) if request.method in ("POST", "PATCH") else (b"", None)
        )
        claim = self._idempotency_claim(request, caller)
        if claim is not None:
            stored = self._stored_result(claim)
            if stored is not None:
                return self._replay(stored, _body_hash(raw), headers)
            if claim in self._in_flight:
                raise conflict(
                    "idempotency_key_in_use",
                    "A request with this Idempotency-Key is still in progress; retry later.",
                )
            self._in_flight.add(claim)
        try:
            delay_ms = self.config.latency_ms
            if self.config.latency_jitter_ms:
                delay_ms += self._jitter.uniform(0, self.config.latency_jitter_ms)
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            fault = self.faults.draw()
            if fault.before_work:
                return self._fail(request, fault, headers)
            call = Call(
                caller,
                _key_prefix(key),
                _key_id(key),
                request.match_info,
                request.query,
                body,
                self._now_ms(),
            )
            with self.store.transaction():
                reply = operation(call)
                if claim is not None and 200 <= reply.status < 300:
                    self.store.store_result(
                        *claim,
                        StoredResult(
                            _body_hash(raw), reply.status, reply.text.encode(), call.now_ms
                        ),
                    )
            if fault.after_work:
                return self._fail(request, fault, headers)
            return _json_response(reply.status, reply.text.encode(), headers)
        finally:
            if claim is not None:
                self._in_flight.discard(claim)

    def _authenticate(self, request: web.Request) -> tuple[Caller, str]:
        header = request.headers.get("Authorization")
        if not header:
            raise unauthenticated(
                "missing_api_key", "Pass your API key as 'Authorization: Bearer <key>'."
            )
        scheme, _, key = header.partition(" ")
        key = key.strip()
        match = _TEST_KEY.match(key) or _LIVE_KEY.match(key)
        if scheme.lower() != "bearer" or match is None:
            raise unauthenticated("invalid_api_key", "The API key is malformed or unknown.")
        if key in self.revoked_keys:
            raise unauthenticated("api_key_revoked", "This API key has been revoked.")
        return Caller(workspace=match.group(1), livemode=match.re is _LIVE_KEY), key

    async def _read_body(self, request: web.Request) -> tuple[bytes, object]:
        """The body's bytes exactly as received, and the JSON they hold."""
        # *(decision)* The page states no body limit; the sandbox refuses more than
        # `max_body_bytes` (1 MiB) with 413 request_too_large rather than buffer anything.
        too_large = ApiProblem(
            413,
            "invalid_request_error",
            "request_too_large",
            f"The request body exceeds {self.config.max_body_bytes} bytes.",
        )
        if (request.content_length or 0) > self.config.max_body_bytes:
            raise too_large
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None
        try:
            return raw, json.loads(raw, parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise invalid(None, "invalid_json", "The request body is not valid JSON.") from None

    # -- idempotency -------------------------------------------------------------------------

    def _idempotency_claim(
        self, request: web.Request, caller: Caller
    ) -> tuple[str, str, str] | None:
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if key is None:
            return None
        # The page: "<= 255 bytes". *(decision)* an empty or longer key is 400 invalid_string
        # with field `Idempotency-Key` (the page names no code for it).
        if not key or len(key.encode()) > MAX_IDEMPOTENCY_KEY_BYTES:
            raise invalid(
                "Idempotency-Key",
                "invalid_string",
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes.",
            )
        return caller.workspace, request.path, key

    def _stored_result(self, claim: tuple[str, str, str]) -> StoredResult | None:
        stored = self.store.stored_result(*claim)
        if stored is None or stored.created_ms < self._now_ms() - IDEMPOTENCY_TTL_S * 1000:
            return None
        return stored

    def _replay(
        self, stored: StoredResult, body_hash: str, headers: dict[str, str]
    ) -> web.Response:
        if stored.body_hash != body_hash:
            raise conflict(
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request body.",
            )
        self.stats.replays += 1
        return _json_response(
            stored.status, stored.response, {**headers, "Idempotent-Replayed": "true"}
        )

    # -- faults and small endpoints ----------------------------------------------------------

    def _fail(self, request: web.Request, fault: Fault, headers: dict[str, str]) -> web.Response:
        self.stats.faults[fault.value] += 1
        if fault.drops_connection and request.transport is not None:
            request.transport.close()
            return web.Response(status=500)
        return _problem_response(internal_error(), headers)

    def _me(self, call: Call) -> Reply:
        workspace = call.caller.workspace
        me = {
            "object": "me",
            "api_key": {
                "id": call.key_id,
                "name": "Sandbox test key" if not call.caller.livemode else "Sandbox live key",
                "prefix": call.key_prefix,
                "scopes": ["read", "write"],
                "rate_limit_tier": "sandbox",
                "livemode": call.caller.livemode,
            },
            "organization": {
                "id": "org_" + hashlib.sha256(workspace.encode()).hexdigest()[:16],
                "slug": workspace,
                "name": workspace.replace("-", " ").title(),
            },
        }
        return Reply(200, encode(me))

    async def _health(self, request: web.Request) -> web.Response:
        body = encode({"status": "ok", "timestamp": format_ms(self._now_ms())})
        return _json_response(200, body.encode(), {})

    @web.middleware
    async def _route_errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Unknown routes and methods answer in the API's error shape, after authentication."""
        try:
            return await handler(request)
        except web.HTTPMethodNotAllowed as refused:
            problem = ApiProblem(
                405,
                "invalid_request_error",
                "method_not_allowed",
                f"{request.method} is not allowed on {request.path}.",
                headers={"Allow": ", ".join(sorted(refused.allowed_methods))},
            )
        except web.HTTPNotFound:
            problem = ApiProblem(
                404,
                "not_found",
                "route_not_found",
                f"No route for {request.method} {request.path}.",
            )

        admitted = self._admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        response = _problem_response(problem, admitted[2])
        self.stats.statuses[response.status] += 1
        return response

    def _now_ms(self) -> int:
        return int(self.config.clock() * 1000)


def _object_routes(
    api: Resources, object_name: str, collection: str
) -> list[tuple[str, str, Operation]]:
    path = f"/{collection}/{{ref}}"
    return [
        ("GET", path, lambda c: _ok(api.get(c.caller, object_name, c.path["ref"]))),
        (
            "PATCH",
            path,
            lambda c: _ok(api.update(c.caller, object_name, c.path["ref"], c.body, c.now_ms)),
        ),
        (
            "DELETE",
            path,
            lambda c: Reply(200, api.delete(c.caller, object_name, c.path["ref"], c.now_ms)),
        ),
    ]


def _ok(record: Record) -> Reply:
    return Reply(200, record.body_text)


def _created(record: Record) -> Reply:
    return Reply(201, record.body_text)


def _list(text: str) -> Reply:
    return Reply(200, text)


def _rate_limited(retry_after_s: int) -> ApiProblem:
    return ApiProblem(
        429,
        "rate_limit_error",
        "rate_limited",
        f"Too many requests; retry after {retry_after_s} s.",
    )


def _key_prefix(key: str) -> str:
    """The key's kind, never any part of its secret: `pivotal_test_` or `pivotal_`."""
    return "pivotal_test_" if _TEST_KEY.match(key) else "pivotal_"


def _key_id(key: str) -> str:
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _reject_constant(name: str) -> None:
    """NaN and Infinity are not JSON, whatever Python's parser tolerates."""
    raise ValueError(f"{name} is not valid JSON")


def _body_hash(raw: bytes) -> str:
    """What an idempotent result remembers of its request: the SHA-256 of its exact bytes."""
    return hashlib.sha256(raw).hexdigest()


def _json_response(status: int, body: bytes, headers: Mapping[str, str]) -> web.Response:
    return web.Response(
        status=status, body=body, headers={**headers, "Content-Type": JSON_CONTENT_TYPE}
    )


def _problem_response(problem: ApiProblem, headers: Mapping[str, str]) -> web.Response:
    return _json_response(
        problem.status, encode(problem.envelope()).encode(), {**headers, **problem.headers}
    )
