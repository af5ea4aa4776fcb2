"""Sending a pass: rows to requests, exactly once, with `concurrency` workers.

Every POST carries an idempotency key derived from the row's identity, and the row is marked in
flight with its exact request in the checkpoint, committed, before the request leaves: an
answer marks it done; no answer leaves the request recorded, so the next attempt or the next
run re-sends it byte for byte and the API replays the first result instead of creating twice.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from bulk.api.client import PivotalClient, encode_body
from bulk.checkpoint import Checkpoint, GroupCommit, RowState, Run
from bulk.errors import (
    ApiError,
    ApiStatusError,
    ApiUnreachableError,
    AuthenticationError,
    NoResponseError,
    RequestAbandoned,
    ServerError,
    as_sentence,
)
from bulk.importing.conflicts import ConflictResolver, display_id_of
from bulk.importing.rows import payload_hash
from bulk.interrupts import StopRequest
from bulk.progress import PassProgress
from bulk.schema import CONTACT, CUSTOMER, ONBOARDING
from bulk.workers import run_workers


def idempotency_key(pass_name: str, key: str, generation: int = 0, scope: str = "") -> str:
    """Stable across runs and machines: the same row always sends the same key. An undo that
    deleted the row's record bumps its `generation`, so its next create is a new request and
    not a replay of the deleted record (generation 0 keeps the keys of older checkpoints).
    A `scope` (`ImportSettings.key_scope`) sets apart another source's rows of the same key."""
    identity = f"{pass_name}\x00{key}" + (f"\x00{generation}" if generation else "")
    identity = f"{scope}\x00{identity}" if scope else identity
    digest = hashlib.sha256(identity.encode()).hexdigest()[:40]
    return f"bulk-{pass_name}-{digest}"


def changed_fields(synced: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body turning `synced` into `payload`; a field no longer set is cleared."""
    body = {name: value for name, value in payload.items() if synced.get(name) != value}
    body.update({name: None for name in synced if name not in payload})
    return body


class Reachability:
    """Tells a row whose request exhausted its retries apart from an API that is down.

    A row that gets no answer (or only 5xx) through all its attempts fails alone, its request
    kept so that the next run sends exactly it again. The API as a whole is taken to be
    unreachable when `threshold` rows in a row — the concurrency: every worker's latest
    request — exhausted their retries with no answer of any kind in between, and then one
    probe `GET /me` gets no usable answer through its own retries either. Only then does
    `ApiUnreachableError` stop the run (exit 3, resumable).
    """

    def __init__(self, client: PivotalClient, threshold: int) -> None:
        self.client = client
        self.threshold = max(threshold, 1)
        self.streak = 0
        """Rows in a row that exhausted their retries."""
        self._probing = asyncio.Lock()
        self._verdict: ApiUnreachableError | None = None
        """Once a probe went unanswered, every worker stops with the same error."""

    def answered(self) -> None:
        self.streak = 0

    async def exhausted(self, error: ApiError) -> None:
        """Count one more row without an answer; probe the API when it is the threshold's."""
        self.streak += 1
        if self.streak < self.threshold:
            return
        async with self._probing:
            if self._verdict is not None:
                raise self._verdict
            if self.streak < self.threshold:
                return  # another worker's probe got an answer meanwhile
            try:
                await self.client.me()
            except (NoResponseError, ServerError) as probe:
                self._verdict = ApiUnreachableError(
                    f"The API is unreachable: {self.streak} requests in a row got no answer "
                    f"through all their attempts (the last: {as_sentence(error)}) and GET /me "
                    "got none either."
                )
                raise self._verdict from probe
            self.streak = 0


@dataclass(frozen=True)
class Outgoing:
    """One request of a row, recorded in flight (exact bytes included) before it leaves."""

    method: str
    path: str
    body: bytes
    target: dict[str, Any]
    """The payload the row holds in Pivotal once the request succeeds."""
    action: str
    """`created` or `updated`: the row's action once it succeeds."""
    before: dict[str, Any] | None = None
    """For an update of a record this checkpoint did not create: the values it replaces,
    which an undo puts back (`Checkpoint.remember_before`)."""


CLAIMED_PER_WORKER = 2
"""Rows claimed per worker under one commit: 8 workers commit 625 times for 10,000 rows
(1,250 with 1 a worker). A kill leaves at most this many rows a worker in flight that never
left; a resume sends each once, under its key."""

Claimed = tuple[RowState, Outgoing | None]
"""A row handed to a worker, with its request already in flight (committed), or None: the
row needs more than the checkpoint to decide (a resend, a lookup, a skip, nothing to send)."""


class PassRunner:
    """Sends one pass's pending rows with `concurrency` workers, in source order.

    Rows are claimed a batch at a time (`CLAIMED_PER_WORKER` a worker): the request of every
    row the checkpoint alone decides (a create, an update with something to change) is marked
    in flight, and the batch's marks share one commit before any of them leaves. Committing row
    by row cost a commit per request (1.1 rows a commit was measured with 8 workers). A row
    claimed but never sent, because a stop came first, is put back to pending; after a kill
    it is found in flight and sent under its key, like any request whose answer never came.
    """

    def __init__(
        self,
        client: PivotalClient,
        checkpoint: Checkpoint,
        run: Run,
        pass_name: str,
        bar: PassProgress,
        stop: StopRequest,
        *,
        concurrency: int,
        force: bool,
        reachability: Reachability | None = None,
        key_scope: str = "",
    ) -> None:
        self.client = client
        self.checkpoint = checkpoint
        self.run_ = run
        self.pass_name = pass_name
        self.concurrency = concurrency
        self.force = force
        """PATCH whole payloads, not only the changed fields."""
        self.bar = bar
        self.stop = stop
        self.conflicts = ConflictResolver(client, checkpoint)
        self.reachability = reachability or Reachability(client, concurrency)
        self.key_scope = key_scope
        self._parent_ids: dict[str, str] = {}
        """Customers' Pivotal ids, read once each: the customers pass is over by now."""
        self.commits: GroupCommit | None = None
        """While the pass runs, the workers' checkpoint writes share commits."""
        self._claimed: deque[Claimed] = deque()
        self._claiming = asyncio.Lock()

    async def run(self) -> None:
        """Workers share one iterator over the checkpoint's pending rows (source order)."""
        rows = self.checkpoint.rows_to_send(self.pass_name, self.run_)
        with self.checkpoint.grouped_commits() as self.commits:
            try:
                await run_workers(self.concurrency, lambda: self._worker(rows))
            finally:
                self._release_claimed()
                self.commits = None

    async def _worker(self, rows: Iterator[RowState]) -> None:
        while not self.stop.is_set() and (claimed := await self._next(rows)) is not None:
            row, outgoing = claimed
            try:
                if outgoing is None:
                    await self.sync(row)
                    done = False
                else:
                    done = await self._deliver(row, outgoing)
            except RequestAbandoned:
                return  # a stop came while the row's request waited: it is not finished
            if done:
                self.bar.advance()
            else:
                state = self.checkpoint.row_state(self.pass_name, row.key)
                self.bar.advance(failed=state == "failed", skipped=state == "skipped")

    async def _next(self, rows: Iterator[RowState]) -> Claimed | None:
        """The next claimed row; when none is left, the next batch is claimed first."""
        async with self._claiming:
            if not self._claimed:
                await self._claim(list(islice(rows, CLAIMED_PER_WORKER * self.concurrency)))
            return self._claimed.popleft() if self._claimed else None

    async def _claim(self, rows: list[RowState]) -> None:
        """Mark the batch's decided requests in flight, then commit them all at once."""
        self._look_up_parents(rows)
        for row in rows:
            outgoing = self._decided(row)
            if outgoing is not None:
                self._mark_in_flight(row, outgoing)
            self._claimed.append((row, outgoing))
        if self.commits is not None and any(outgoing for _, outgoing in self._claimed):
            await self.commits.durable()

    def _look_up_parents(self, rows: list[RowState]) -> None:
        """The batch's customers' Pivotal ids, in one read rather than one a row."""
        if self.pass_name == CUSTOMER.collection:
            return
        wanted = {
            row.customer_key
            for row in rows
            if row.customer_ref is None
            and row.customer_key is not None
            and row.customer_key not in self._parent_ids
        }
        if wanted:
            self._parent_ids.update(self.checkpoint.done_customer_ids(wanted))

    def _release_claimed(self) -> None:
        """Claimed rows no worker took (a stop came first) go back to pending; after a failed
        commit there is nothing to put back (SQLite rolled the marks back) or to write with."""
        if self.commits is not None and self.commits.failed:
            self._claimed.clear()
        while self._claimed:
            row, outgoing = self._claimed.popleft()
            if outgoing is not None:
                self.checkpoint.release_unsent(row)

    def _decided(self, row: RowState) -> Outgoing | None:
        """The request a row sends when the checkpoint alone decides it, with no side effect;
        None leaves the row to `sync`."""
        if row.request_method is not None:
            return None  # a resend: its recorded request goes again, through `sync`
        if row.pivotal_id is not None:
            return self._update_request(row)
        if self.pass_name == CUSTOMER.collection:
            return self._create_request(row, None)
        if self.conflicts.onboardings.needs_lookup(row):
            return None
        return self._create_request(row, self._known_parent_id(row))

    async def sync(self, row: RowState) -> None:
        """Bring one row to `done`, `failed` or `skipped`."""
        if row.request_method is not None:
            await self._resend(row)
        elif row.pivotal_id is None:
            await self._create(row)
        else:
            await self._update(row)

    async def _resend(self, row: RowState) -> None:
        """A request from before whose answer never came: send exactly it again."""
        assert row.request_path is not None and row.request_body is not None
        if row.request_method == "POST" and await self._adopted_before_sending(row):
            return  # its key may have expired since: found under its customer, not sent again
        action = "created" if row.request_method == "POST" else "updated"
        target = row.request_payload or row.payload
        method = row.request_method or "POST"
        await self._send(row, Outgoing(method, row.request_path, row.request_body, target, action))
        fresh = self.checkpoint.reload(row)
        if fresh.state == "done" and fresh.synced_payload != fresh.payload:
            await self._update(fresh)

    async def _create(self, row: RowState) -> None:
        parent_id = None
        if self.pass_name != CUSTOMER.collection:
            parent_id = self._parent_id(row)
            if parent_id is None:
                return
            if self.pass_name == ONBOARDING.collection and await self._adopted_before_sending(
                row, parent_id
            ):
                return  # a customer this checkpoint did not create: its onboarding exists
        outgoing = self._create_request(row, parent_id)
        assert outgoing is not None
        await self._send(row, outgoing)

    def _create_request(self, row: RowState, parent_id: str | None) -> Outgoing | None:
        """POST the row; a contact or an onboarding needs its customer's id (None: not known)."""
        body = dict(row.payload)
        if self.pass_name == CUSTOMER.collection:
            path = f"/{CUSTOMER.collection}"
        elif parent_id is None:
            return None
        elif self.pass_name == CONTACT.collection:
            path = f"/{CUSTOMER.collection}/{parent_id}/{CONTACT.collection}"
        else:
            path = f"/{ONBOARDING.collection}"
            body["customer_id"] = parent_id
        return Outgoing("POST", path, encode_body(body), row.payload, "created")

    async def _update(self, row: RowState) -> None:
        outgoing = self._update_request(row)
        if outgoing is None:
            assert row.pivotal_id is not None
            self.checkpoint.mark_done(
                row,
                "unchanged",
                row.pivotal_id,
                row.display_id,
                0,
                row.payload,
                payload_hash(row.payload),
            )
            return
        await self._send(row, outgoing)

    def _update_request(self, row: RowState) -> Outgoing | None:
        """PATCH what differs from what Pivotal holds (everything with `--force`); None when
        nothing does."""
        assert row.pivotal_id is not None
        synced = row.synced_payload or {}
        body = dict(row.payload) if self.force else changed_fields(synced, row.payload)
        if not body:
            return None
        before = None
        if row.origin != "created":  # an undo puts back what an adopted record held
            before = {name: synced.get(name) for name in body}
        path = f"/{self.pass_name}/{row.pivotal_id}"  # passes are named after collections
        return Outgoing("PATCH", path, encode_body(body), row.payload, "updated", before)

    async def _adopted_before_sending(self, row: RowState, customer: str | None = None) -> bool:
        """An onboarding that may be in Pivotal already is looked up under its customer first
        (`bulk.importing.matching`); True when that settled the row. A lookup without an
        answer fails the row alone, like a request without one, and a refused one (a customer
        deleted since) with the API's error; either keeps a request in flight for next time."""
        try:
            return await self.conflicts.adopt_before_sending(row, customer, self._update)
        except AuthenticationError:
            raise
        except (NoResponseError, ServerError) as error:
            code = error.code if isinstance(error, ServerError) else "no_response"
            message = _no_answer(error)
            self.checkpoint.mark_failed(row, "failed", code, message, 0, outcome_known=False)
            await self.reachability.exhausted(error)
        except ApiStatusError as error:
            self.reachability.answered()
            code, message = error.code, error.api_message
            self.checkpoint.mark_failed(row, "failed", code, message, 0, outcome_known=False)
        return True

    def _parent_id(self, row: RowState) -> str | None:
        """The customer's Pivotal id, or None after marking the row skipped."""
        known = self._known_parent_id(row)
        if known is not None:
            return known
        assert row.customer_key is not None
        parent = self.checkpoint.parent(row.customer_key)
        reason = f"customer '{row.customer_key}' is {parent.state}"
        if parent.error_message:
            reason += f": {parent.error_message}"
        self.checkpoint.mark_failed(row, "skipped", "customer_not_imported", reason, 0)
        return None

    def _known_parent_id(self, row: RowState) -> str | None:
        """The customer's Pivotal id, when the row names it or its customer is done."""
        if row.customer_ref is not None:
            return row.customer_ref
        if row.customer_key is None:
            return None
        if row.customer_key not in self._parent_ids:
            self._look_up_parents([row])
        return self._parent_ids.get(row.customer_key)

    async def _send(self, row: RowState, outgoing: Outgoing) -> None:
        """Mark the row in flight, commit, then deliver: a row the claim did not decide."""
        self._mark_in_flight(row, outgoing)
        if self.commits is not None:
            await self.commits.durable()  # in flight, committed, before the request leaves
        await self._deliver(row, outgoing)

    def _mark_in_flight(self, row: RowState, outgoing: Outgoing) -> None:
        """Record the request with its body's exact bytes (a resend sends them again)."""
        if outgoing.before is not None:
            self.checkpoint.remember_before(row, outgoing.before, row.written_at)
        self.checkpoint.mark_in_flight(
            row, outgoing.method, outgoing.path, outgoing.body, outgoing.target
        )

    async def _deliver(self, row: RowState, outgoing: Outgoing) -> bool:
        """Send a request already committed in flight, and record what came back; True when
        the answer marked the row done (False: failed, or settled by a lookup).

        A request that exhausts its retries without an answer fails its row alone, the
        request kept for the next run (`Reachability` decides whether the API is down).
        """
        method, path, target = outgoing.method, outgoing.path, outgoing.target
        key = (
            idempotency_key(self.pass_name, row.key, row.generation, self.key_scope)
            if method == "POST"
            else None
        )
        try:
            response = await self.client.request(
                method, path, body=outgoing.body, idempotency_key=key
            )
        except RequestAbandoned as abandoned:
            if not abandoned.sent and row.request_method is None:
                self.checkpoint.release_unsent(row)  # it never left: nothing to resolve
            raise
        except AuthenticationError:
            raise  # the run stops; the request stays recorded and is re-sent next time
        except (NoResponseError, ServerError) as error:
            code = error.code if isinstance(error, ServerError) else "no_response"
            self.checkpoint.mark_failed(
                row, "failed", code, _no_answer(error), error.attempts, outcome_known=False
            )
            await self.reachability.exhausted(error)
        except ApiStatusError as error:
            self.reachability.answered()
            # only a create can collide with a record we already made
            if method == "POST" and await self._adopted(row, error, path, target):
                return False
            self.checkpoint.mark_failed(
                row, "failed", error.code, error.api_message, error.attempts
            )
        else:
            self.reachability.answered()
            pivotal_id = response.body.get("id")
            if not isinstance(pivotal_id, str | int) or isinstance(pivotal_id, bool):
                message = "the API answered without an id; run again to retry"
                self.checkpoint.mark_failed(
                    row, "failed", "bad_response", message, response.attempts, outcome_known=False
                )
                return False
            self.checkpoint.mark_done(
                row,
                outgoing.action,
                str(pivotal_id),
                display_id_of(response.body),
                response.attempts,
                target,
                row.payload_hash if target is row.payload else payload_hash(target),
                written_at=_text_or_none(response.body.get("updated_at")),
                seen=response.body if method == "PATCH" and row.origin != "created" else None,
            )
            return True
        return False

    async def _adopted(
        self, row: RowState, error: ApiStatusError, path: str, target: dict[str, Any]
    ) -> bool:
        """Adopt the record a refused create collided with. A lookup that gets no answer
        fails the row alone (the 409 is known: nothing of ours was created; the next run's
        create meets the same conflict and looks again)."""
        try:
            return await self.conflicts.adopt(row, error, path, target, self._update)
        except (NoResponseError, ServerError) as lookup:
            error.api_message += f"; looking up the existing record got no answer: {lookup}"
            return False


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _no_answer(error: ApiError) -> str:
    return f"{error} (no usable answer after {error.attempts} attempts; run again to retry)"
