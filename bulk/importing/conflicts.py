"""Adoption: a create the API refuses because the record already exists is resolved, not failed.

`409 slug_taken` (customers) and `409 email_taken` (contacts) name a record that holds the row's
unique field. When that record is the row's own — a customer whose `metadata.external_id` is the
row's `external_id`, a contact no other row of the checkpoint owns — it is adopted: the row is
marked done as `adopted` with the record's id, then PATCHed with whatever differs from the
source. Someone else's record fails the row with a conflict naming both.

The same lookups find what an unanswered POST may have created (`find_created`), for a row
that left the source while its request was in flight: it is looked up, never sent blind.
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
from bulk.importing.rows import payload_hash, predicted_slug
from bulk.schema import CONTACT, CUSTOMER, ONBOARDING, SCHEMAS, ObjectSchema


@dataclass(frozen=True)
class Adoption:
    """A record of ours that the API already holds."""

    id: str
    display_id: int | None
    synced: dict[str, Any]
    """What Pivotal holds of the row's fields."""


class ConflictResolver:
    """`slug_taken` and `email_taken`: adopt our own record, report someone else's."""

    def __init__(self, client: PivotalClient, checkpoint: Checkpoint) -> None:
        self.client = client
        self.checkpoint = checkpoint
        self._customers_by_slug: dict[str, dict[str, Any]] | None = None
        self._customers_by_key: dict[str, dict[str, Any]] = {}
        self._walking = asyncio.Lock()
        """Held by the one walk: a lookup meanwhile waits for the whole index, not a part."""

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
        self.checkpoint.mark_done(
            row,
            "adopted",
            adopted.id,
            adopted.display_id,
            error.attempts,
            adopted.synced,
            payload_hash(adopted.synced),
        )
        fresh = self.checkpoint.reload(row)
        if fresh.synced_payload != fresh.payload:
            await update(fresh)
            self.checkpoint.set_action(row, "adopted")
        return True

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
            return _adoption(ours, target)
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
        """Once per run: index every customer by slug and by `metadata.external_id`, with the
        export's tie-safe walk: the plain cursor skips customers that share a page boundary's
        `created_at`, and a holder missed there would fail its row."""
        async with self._walking:
            if self._customers_by_slug is not None:
                return
            by_slug: dict[str, dict[str, Any]] = {}
            by_key: dict[str, dict[str, Any]] = {}
            fetch = self.client.page_fetcher(f"/{CUSTOMER.collection}")
            pages = walk(fetch, WalkState(), splits=CUSTOMER_SPLITS, label="customers")
            async for page in pages:
                for customer in page:
                    by_slug[str(customer.get("slug"))] = customer
                    owner = (customer.get("metadata") or {}).get("external_id")
                    if isinstance(owner, str):
                        by_key.setdefault(owner, customer)
            self._customers_by_slug, self._customers_by_key = by_slug, by_key

    async def find_created(self, row: RowState) -> Adoption | None:
        """The record an unanswered POST of `row` may have created, or None.

        Looked up by the row's identity: a customer by its `metadata.external_id`; a contact
        by email under its customer; an onboarding by name under its customer (only when one
        onboarding has that name).
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
            found = await self._listed(row.request_path, lambda c: _email(c) == email)
            record = found[0] if found else None
        elif row.pass_name == ONBOARDING.collection:
            customer_id = _sent_field(row.request_body, "customer_id")
            name = target.get("name")
            path = f"/{CUSTOMER.collection}/{customer_id}/{ONBOARDING.collection}"
            found = await self._listed(path, lambda o: o.get("name") == name)
            record = found[0] if len(found) == 1 and customer_id is not None else None
        return _adoption(record, target) if record is not None else None

    async def _listed(
        self, path: str, wanted: Callable[[dict[str, Any]], bool]
    ) -> list[dict[str, Any]]:
        return [item async for item in self.client.iterate(path) if wanted(item)]

    async def _adopt_contact(
        self, row: RowState, error: ApiStatusError, path: str, target: dict[str, Any]
    ) -> Adoption | None:
        email = str(target.get("email", "")).lower()
        async for contact in self.client.iterate(path):
            if _email(contact) != email:
                continue
            owner = self.checkpoint.key_of_pivotal_id(CONTACT.collection, str(contact.get("id")))
            if owner is not None and owner != row.key:
                error.api_message = (
                    f"email '{email}' belongs to contact {contact.get('id')} of row '{owner}'"
                )
                return None
            return _adoption(contact, target)
        return None


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


def _adoption(record: dict[str, Any], target: dict[str, Any]) -> Adoption:
    schema = SCHEMAS.get(str(record.get("object")))
    synced = {
        name: _held(schema, name, record[name], target[name]) for name in target if name in record
    }
    return Adoption(str(record["id"]), display_id_of(record), synced)


def _held(schema: ObjectSchema | None, name: str, held: Any, sent: Any) -> Any:
    """What the record holds, in the row's spelling where the API only lowercased it (it stores
    `email` and `domain` lowercase, as documented): no difference to PATCH."""
    if schema is None or name not in schema.field_names() or not schema.field(name).lowercase:
        return held
    same = isinstance(held, str) and isinstance(sent, str) and held == sent.lower()
    return sent if same else held
