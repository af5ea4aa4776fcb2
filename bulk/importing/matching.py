"""Finding an onboarding of ours that Pivotal already holds, although nothing about it is unique.

The API keeps idempotency keys 24 hours. A customer or contact sent again after that collides on
its unique slug or email and is adopted (`bulk.importing.conflicts`); an onboarding has no such
field, and sent again it is created twice. So before an onboarding is POSTed it is looked up
under its customer whenever it may exist already:

- its request was in flight when an earlier run stopped: that POST may have landed, and a
  resume may come days later, after its key expired;
- its customer was not created by this checkpoint (adopted, or named by Pivotal id): the
  checkpoint that created the customer's onboardings may have been lost.

Which listed onboarding is the row's:

1. Candidates are the customer's onboardings that no other row of the checkpoint holds (one
   that a row holds is that row's, never a second row's).
2. A row whose request was in flight adopts the one candidate that equals the body it sent in
   every field it sent (as the API stores them: timestamps as instants): what its own POST
   made. Under a customer this checkpoint created, that is as sure as a replay, and the row is
   recorded as `created`; anywhere else as `adopted`.
3. Otherwise the candidates of the row's name (the sent name, for a request in flight) decide:
   exactly one is adopted; several fail the row as `ambiguous_match`, naming the count and the
   customer — never guessed; none means the row is sent.

A row with several candidates of its name that its POST in flight cannot tell apart (identical
twins both in flight) fails too: rare, and the message says what to do.
An adopted onboarding is then PATCHed with whatever differs from the source, like any adopted row.

Cost: one walk of a customer's onboardings per run (tie-safe, `bulk.exporting.walker`), shared by
every row under that customer; usually one request. A customer created by this checkpoint is
walked only for a row that was in flight. (`Lists` keeps a customer's contacts the same way, for
`email_taken`.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bulk.api.client import PivotalClient
from bulk.checkpoint import Checkpoint, RowState
from bulk.exporting.walker import WalkState, WalkWarnings, walk
from bulk.schema import CUSTOMER, ONBOARDING, Kind, ObjectSchema, parse_timestamp

AMBIGUOUS = "ambiguous_match"


@dataclass(frozen=True)
class Found:
    """The onboarding to adopt for a row."""

    record: dict[str, Any]
    ours: bool
    """Made by the row's own POST, as sure as a replay would be: the record equals what the
    POST in flight sent, under a customer this checkpoint created (recorded as `created`)."""


@dataclass(frozen=True)
class Unmatched:
    """A lookup that cannot decide: the row fails with this code and message."""

    code: str
    message: str


@dataclass(frozen=True)
class Listing:
    """A list's records, as one walk found them."""

    records: list[dict[str, Any]]
    complete: bool
    """False when the walker could not page through a group sharing one `created_at`."""


class Lists:
    """Lists walked once per run and kept, by path (a customer's contacts or onboardings): the
    rows under one customer share one walk, and workers asking together wait for it. A walk
    that fails is not kept, so the next row walks again."""

    def __init__(self, client: PivotalClient) -> None:
        self.client = client
        self._listings: dict[str, Listing] = {}
        self._walking: dict[str, asyncio.Lock] = {}

    async def get(self, path: str, *, again: bool = False) -> Listing:
        """The list at `path`; `again` walks it anew (a record may have been made since)."""
        async with self._walking.setdefault(path, asyncio.Lock()):
            if again or path not in self._listings:
                self._listings[path] = await self._walk(path)
            return self._listings[path]

    async def _walk(self, path: str) -> Listing:
        """A tie-safe walk: the plain cursor skips rows that share a page boundary's
        `created_at`, and a record missed there would be created twice."""
        warnings = WalkWarnings()
        pages = walk(self.client.page_fetcher(path), WalkState(), warnings=warnings, label=path)
        records = [record async for page in pages for record in page]
        return Listing(records, complete=not warnings.messages)


def onboardings_path(customer: str) -> str:
    return f"/{CUSTOMER.collection}/{quote(customer, safe='')}/{ONBOARDING.collection}"


class OnboardingMatcher:
    """Looks an onboarding up under its customer before it is sent (see the module docstring)."""

    def __init__(self, lists: Lists, checkpoint: Checkpoint) -> None:
        self.lists = lists
        self.checkpoint = checkpoint
        self._origins: dict[str, str | None] = {}

    def needs_lookup(self, row: RowState) -> bool:
        """Whether `row` may already be in Pivotal although the checkpoint does not know it."""
        if row.pass_name != ONBOARDING.collection:
            return False
        if row.request_method == "POST":
            return True
        if row.customer_key is None:
            return True  # a customer named by Pivotal id: nothing says who made its onboardings
        return not self._customer_is_ours(row)

    async def find(self, row: RowState, customer: str) -> Found | Unmatched | None:
        """The onboarding under `customer` (an id or display_id) to adopt for `row`, an
        `Unmatched` when the row must fail rather than guess, or None: send it."""
        listing = await self.lists.get(onboardings_path(customer))
        candidates = [record for record in listing.records if not self._held_by_other(row, record)]
        sent = _sent_body(row)
        if sent is not None:
            same = [record for record in candidates if _equals_sent(record, sent)]
            if len(same) == 1:
                return Found(same[0], ours=self._customer_is_ours(row))
        name = (sent if sent is not None else row.payload).get("name")
        named = [record for record in candidates if record.get("name") == name]
        if len(named) == 1:
            return Found(named[0], ours=False)
        if len(named) > 1:
            return Unmatched(AMBIGUOUS, self._ambiguous(row, customer, len(named), name))
        if not listing.complete:
            return Unmatched(AMBIGUOUS, self._incomplete(row, customer))
        return None

    def _customer_is_ours(self, row: RowState) -> bool:
        return row.customer_key is not None and self._customer_origin(row.customer_key) == "created"

    def _customer_origin(self, customer_key: str) -> str | None:
        """`created` or `adopted` (None when unknown), read once per customer per run."""
        if customer_key not in self._origins:
            self._origins[customer_key] = self.checkpoint.parent(customer_key).origin
        return self._origins[customer_key]

    def _held_by_other(self, row: RowState, record: Mapping[str, Any]) -> bool:
        holder = self.checkpoint.key_of_pivotal_id(ONBOARDING.collection, str(record.get("id")))
        return holder is not None and holder != row.key

    def _whose(self, row: RowState, customer: str) -> str:
        if row.customer_key is None:
            return f"customer {customer}"
        made = "created" if self._customer_is_ours(row) else "not created"
        return f"customer {customer} (customer '{row.customer_key}', {made} by this checkpoint)"

    def _ambiguous(self, row: RowState, customer: str, count: int, name: object) -> str:
        named = f"named {name!r}" if isinstance(name, str) else "without a name"
        return (
            f"{count} onboardings {named} under {self._whose(row, customer)} could each be "
            "this row's; none was adopted and none created. Delete or rename the extra ones "
            "in Pivotal, or give this row another name, then run again"
        )

    def _incomplete(self, row: RowState, customer: str) -> str:
        return (
            f"the onboardings of {self._whose(row, customer)} could not all be listed (too many "
            "share one created_at), so this row's may be among those missed; none was created"
        )


def _sent_body(row: RowState) -> dict[str, Any] | None:
    """The fields a POST in flight sent (its exact stored bytes, parsed), but the customer the
    list already stands for; None when no POST is in flight."""
    if row.request_method != "POST" or row.request_body is None:
        return None
    try:
        document = json.loads(row.request_body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    return {name: value for name, value in document.items() if name != "customer_id"}


def _equals_sent(record: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    return all(
        name in record and same_value(ONBOARDING, name, value, record[name])
        for name, value in sent.items()
    )


def same_value(schema: ObjectSchema, name: str, sent: object, listed: object) -> bool:
    """Whether the API holds what was sent, as it documents storing it: a field it stores
    lowercase (emails, domains) in any case, a timestamp as the same instant in any spelling."""
    kind, lowercase = _rules(schema, name)
    if isinstance(sent, str) and isinstance(listed, str):
        if lowercase:
            return sent.lower() == listed
        if kind is Kind.DATETIME:
            try:
                return parse_timestamp(sent, assume_utc=True) == parse_timestamp(
                    listed, assume_utc=True
                )
            except ValueError:
                pass
    return sent == listed


def _rules(schema: ObjectSchema, name: str) -> tuple[Kind | None, bool]:
    try:
        field = schema.field(name)
    except KeyError:
        return None, False
    return field.kind, field.lowercase
