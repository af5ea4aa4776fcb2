"""Adoption: a create the API refuses because the record already exists is resolved, not failed.

`409 slug_taken` (customers) and `409 email_taken` (contacts) name a record that holds the row's
unique field. When that record is the row's own — a customer whose `metadata.external_id` is the
row's `external_id`, a contact no other row of the checkpoint owns — it is adopted: the row is
marked done as `adopted` with the record's id, then PATCHed with whatever differs from the
source. Someone else's record fails the row with a conflict naming both.

The same lookups find what an unanswered POST may have created (`find_created`), for a row
that left the source while its request was in flight: it is looked up, never sent blind.
An onboarding, which has nothing unique to collide on, is looked up under its customer before
it is sent whenever it may exist already (`adopt_before_sending`, rules in
`bulk.importing.matching`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bulk.api.client import PivotalClient
from bulk.checkpoint import Checkpoint, RowState
from bulk.errors import ApiStatusError
from bulk.exporting.walker import CUSTOMER_SPLITS, WalkState, walk
from bulk.importing.matching import Found, Lists, OnboardingMatcher, Unmatched, same_value
from bulk.importing.rows import payload_hash, predicted_slug
from bulk.schema import COLLECTIONS, CONTACT, CUSTOMER, ONBOARDING


@dataclass(frozen=True)
class Adoption:
    """A record of ours that the API already holds."""

    id: str
    display_id: int | None
    synced: dict[str, Any]
    """What Pivotal holds of the row's fields."""
    updated_at: str | None = None
    """The record's `updated_at` as the lookup saw it."""
    record: dict[str, Any] | None = None
    """The whole record as the lookup saw it: what an undo restores comes from it."""


class ConflictResolver:
    """`slug_taken` and `email_taken`: adopt our own record, report someone else's."""

    def __init__(self, client: PivotalClient, checkpoint: Checkpoint) -> None:
        self.client = client
        self.checkpoint = checkpoint
        self._customers_by_slug: dict[str, dict[str, Any]] | None = None
        self._customers_by_key: dict[str, dict[str, Any]] = {}
        self._walking_customers = asyncio.Lock()
        """Workers that meet `slug_taken` together wait for one walk, not for an index that
        is still being filled (they used to read it half-built and fail their rows)."""
        self.lists = Lists(client)
        self.onboardings = OnboardingMatcher(self.lists, checkpoint)

    async def adopt(
        self,
        row: RowState,
        error: ApiStatusError,
        path: str,
        target: dict[str, Any],
        update: Callable[[RowState], Awaitable[None]],
    ) -> bool:
        """Adopt the record a refused POST to `path` collided with, then `update` what differs.

        False when there is nothing to adopt: the row is left for the caller to fail, with
        `error` saying why.
        """
        adopted = await self.resolve(row, error, path, target)
        if adopted is None:
            return False
        await self._mark_adopted(row, adopted, error.attempts, update)
        return True

    async def adopt_before_sending(
        self, row: RowState, customer: str | None, update: Callable[[RowState], Awaitable[None]]
    ) -> bool:
        """Look an onboarding up under `customer` (default: the one its POST in flight names)
        before it is sent, when it may be in Pivotal already; True when that settled the row:
        adopted (then `update` PATCHes what differs), or failed rather than guessed."""
        if not self.onboardings.needs_lookup(row):
            return False
        customer = customer or _sent_field(row.request_body, "customer_id")
        if customer is None:
            return False
        found = await self.onboardings.find(row, str(customer))
        if found is None:
            return False
        if isinstance(found, Unmatched):
            # the request stays recorded (in flight: its POST may have landed), so the next
            # run looks again instead of sending it blind
            self.checkpoint.mark_failed(
                row, "failed", found.code, found.message, 0, outcome_known=False
            )
            return True
        adopted = _adoption(found.record, row.request_payload or row.payload, row.pass_name)
        action = "created" if found.ours else "adopted"
        await self._mark_adopted(row, adopted, 0, update, action)
        return True

    async def _mark_adopted(
        self,
        row: RowState,
        adopted: Adoption,
        attempts: int,
        update: Callable[[RowState], Awaitable[None]],
        action: str = "adopted",
    ) -> None:
        """Record the found record as the row's (`adopted`, or `created` when it is what the
        row's own POST made), then PATCH whatever differs from the source; an adopted row
        stays reported as adopted, a created one is then updated, as after a replay."""
        self.checkpoint.mark_done(
            row,
            action,
            adopted.id,
            adopted.display_id,
            attempts,
            adopted.synced,
            payload_hash(adopted.synced),
            written_at=adopted.updated_at,
            seen=adopted.record,
        )
        fresh = self.checkpoint.reload(row)
        if fresh.synced_payload != fresh.payload:
            await update(fresh)
            if action == "adopted":
                self.checkpoint.set_action(row, action)

    async def resolve(
        self, row: RowState, error: ApiStatusError, path: str, target: dict[str, Any]
    ) -> Adoption | None:
        """The record to adopt for a refused POST to `path`, or None (`error` then says why)."""
        if error.code == "slug_taken" and row.pass_name == CUSTOMER.collection:
            return await self._adopt_customer(row, error, target)
        if error.code == "email_taken" and row.pass_name == CONTACT.collection:
            return await self._adopt_contact(row, error, path, target)
        if error.code == "idempotency_key_reused":
            return await self._adopt_reused(row, error)
        return None

    async def _adopt_reused(self, row: RowState, error: ApiStatusError) -> Adoption | None:
        """Our key went with another body before: an edited row after a lost checkpoint, or
        the same source run from another machine. The key is the row's own, so the record
        that request made is ours: find it as a lost answer is found, adopt it, and the
        difference is PATCHed, instead of the row failing on every run for a day."""
        found = await self.find_created(self.checkpoint.reload(row))
        if found is None:
            error.api_message = (
                f"{error.api_message} (this row's key was used with another body, and no "
                "record of this row was found under its customer: several of one name?)"
            )
        return found

    async def _adopt_customer(
        self, row: RowState, error: ApiStatusError, target: dict[str, Any]
    ) -> Adoption | None:
        """Ours is the customer whose `metadata.external_id` is the row's key, whatever slug
        the API gave it; any other holder of the slug is somebody else's."""
        ours = await self._customer_with_key(row.key)
        if ours is not None:
            return _adoption(ours, target, row.pass_name)
        slug = str(target.get("slug") or predicted_slug(str(target.get("name", ""))))
        holder = self._customers_by_slug.get(slug) if self._customers_by_slug else None
        who = f"customer {holder.get('id')}" if holder is not None else "another customer"
        owner = (holder.get("metadata") or {}).get("external_id") if holder is not None else None
        error.api_message = (
            f"slug '{slug}' belongs to {who} (external_id {owner!r}), not to external_id "
            f"'{row.key}'; give this row its own slug in a slug column"
        )
        return None

    async def _customer_with_key(self, key: str) -> dict[str, Any] | None:
        """Walk the customer list once per run (there is no lookup by metadata), then the index."""
        await self._walk_customers()
        return self._customers_by_key.get(key)

    async def _walk_customers(self) -> None:
        """Index every customer by slug and by `metadata.external_id`, once per run, with the
        export's tie-safe walk: the plain cursor skips customers that share a page boundary's
        `created_at`, and a holder missed there would fail its row. A walk that fails leaves
        no index, so the next lookup walks again."""
        async with self._walking_customers:
            if self._customers_by_slug is not None:
                return
            by_slug: dict[str, dict[str, Any]] = {}
            by_key: dict[str, dict[str, Any]] = {}
            fetch = self.client.page_fetcher(f"/{CUSTOMER.collection}")
            async for page in walk(fetch, WalkState(), splits=CUSTOMER_SPLITS, label="customers"):
                for customer in page:
                    by_slug[str(customer.get("slug"))] = customer
                    owner = (customer.get("metadata") or {}).get("external_id")
                    if isinstance(owner, str):
                        by_key.setdefault(owner, customer)
            self._customers_by_slug, self._customers_by_key = by_slug, by_key

    async def find_created(self, row: RowState) -> Adoption | None:
        """The record an unanswered POST of `row` may have created, or None.

        Looked up by the row's identity: a customer by its `metadata.external_id`; a contact
        by email under its customer; an onboarding under its customer, by what its POST sent
        (`bulk.importing.matching`: never one of several of a name).
        """
        target = row.request_payload or row.payload
        if row.request_method != "POST" or row.request_path is None:
            return None
        record: dict[str, Any] | None = None
        if row.pass_name == CUSTOMER.collection:
            await self._walk_customers()  # once: lookups come before any create
            record = self._customers_by_key.get(row.key)
        elif row.pass_name == CONTACT.collection:
            email = str(target.get("email", "")).lower()
            record = await self._contact_with_email(row.request_path, email)
        elif row.pass_name == ONBOARDING.collection:
            customer_id = _sent_field(row.request_body, "customer_id")
            if customer_id is not None:
                matched = await self.onboardings.find(row, str(customer_id))
                record = matched.record if isinstance(matched, Found) else None
        return _adoption(record, target, row.pass_name) if record is not None else None

    async def _contact_with_email(self, path: str, email: str) -> dict[str, Any] | None:
        """The contact with `email` in the list at `path` (a customer's contacts), from the
        customer's one walk this run; walked again when that walk has none (made since)."""
        for again in (False, True):
            listing = await self.lists.get(path, again=again)
            for contact in listing.records:
                if _email(contact) == email:
                    return contact
        return None

    async def _adopt_contact(
        self, row: RowState, error: ApiStatusError, path: str, target: dict[str, Any]
    ) -> Adoption | None:
        email = str(target.get("email", "")).lower()
        contact = await self._contact_with_email(path, email)
        if contact is None:
            return None
        owner = self.checkpoint.key_of_pivotal_id(CONTACT.collection, str(contact.get("id")))
        if owner is not None and owner != row.key:
            error.api_message = (
                f"email '{email}' belongs to contact {contact.get('id')} of row '{owner}'"
            )
            return None
        return _adoption(contact, target, row.pass_name)


def display_id_of(body: dict[str, Any]) -> int | None:
    """A record's `display_id`, when the API gave an integer one."""
    value = body.get("display_id")
    return value if isinstance(value, int) else None


def _email(contact: dict[str, Any]) -> str:
    return str(contact.get("email", "")).lower()


def _sent_field(body: bytes | None, name: str) -> Any:
    """A field of a request body as it was sent (None when unreadable)."""
    try:
        document = json.loads(body or b"null")
    except ValueError:
        return None
    return document.get(name) if isinstance(document, dict) else None


def _adoption(record: dict[str, Any], target: dict[str, Any], pass_name: str) -> Adoption:
    """What Pivotal holds of the row's fields: where it holds what the row says (an email in
    lowercase, say), the row's own spelling, so adopting sends no PATCH that changes nothing."""
    schema = COLLECTIONS[pass_name]
    synced = {
        name: value if same_value(schema, name, value, record[name]) else record[name]
        for name, value in target.items()
        if name in record
    }
    updated_at = record.get("updated_at")
    seen_at = updated_at if isinstance(updated_at, str) else None
    return Adoption(str(record["id"]), display_id_of(record), synced, seen_at, record)
