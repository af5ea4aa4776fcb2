"""The API's operations on customers, contacts and onboardings, independent of HTTP.

Each method is synchronous, runs inside the caller's transaction, and either returns the object
as served or raises `ApiProblem`. The rules of `pivotal-api.md` live here: ids, slugs,
`email_taken`, primary contacts, onboarding timestamps, soft delete and pagination.
"""

from __future__ import annotations

import itertools
import os
import random
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bulk.schema import SCHEMAS, ObjectSchema

from .newer import extra_fields, newer_enum_defaults, newer_schemas
from .problems import conflict, invalid, not_found
from .slugs import derive_slug
from .store import Record, Store, encode
from .timestamps import format_ms, parse_iso, to_ms
from .validation import clean_body, clean_value, empty_value

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_ALPHABET = string.digits + string.ascii_lowercase


@dataclass(frozen=True)
class Caller:
    """Who is calling: the workspace a key selects and whether it is a live key."""

    workspace: str
    livemode: bool


class IdFactory:
    """Cuid-like ids: `c`, the time in base 36, a counter, and randomness; never all digits."""

    def __init__(self) -> None:
        self._counter = itertools.count(random.randrange(36**4))
        self._random = random.Random(os.urandom(16))

    def new(self, now_ms: int) -> str:
        counter = next(self._counter) % 36**4
        tail = "".join(self._random.choices(_ALPHABET, k=12))
        return f"c{_base36(now_ms, 8)}{_base36(counter, 4)}{tail}"


def _base36(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 36)
        digits.append(_ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, "0")[-width:]


class Resources:
    """Every object operation of the API over one store."""

    def __init__(self, store: Store, *, extra_fields: bool = False) -> None:
        self.store = store
        self.ids = IdFactory()
        self.extra_fields = extra_fields
        """Behave like a newer API version (see `newer`)."""
        self.schemas = newer_schemas() if extra_fields else SCHEMAS

    # -- reads -------------------------------------------------------------------------------

    def get(self, caller: Caller, object_name: str, reference: str) -> Record:
        return self._live(caller, object_name, reference)

    def list(
        self,
        caller: Caller,
        object_name: str,
        query: Mapping[str, str],
        *,
        customer_reference: str | None = None,
    ) -> str:
        """A list envelope (JSON text) for one page of `object_name`, newest first."""
        limit = _page_size(query.get("limit"))
        older_than = _cursor(query.get("cursor"))
        filters = self._list_filters(caller, self.schemas[object_name], query)
        if customer_reference is not None:
            filters["customer_id"] = self._live(caller, "customer", customer_reference).id
        rows = self.store.page(
            caller.workspace,
            object_name,
            limit=limit + 1,
            older_than_ms=older_than,
            filters=filters,
        )
        has_more = len(rows) > limit
        page = rows[:limit]
        next_cursor = encode(format_ms(page[-1][1])) if has_more else "null"
        data = ",".join(body for body, _ in page)
        return (
            f'{{"object":"list","data":[{data}],'
            f'"has_more":{"true" if has_more else "false"},"next_cursor":{next_cursor}}}'
        )

    def _list_filters(
        self, caller: Caller, schema: ObjectSchema, query: Mapping[str, str]
    ) -> dict[str, str]:
        filters: dict[str, str] = {}
        for name in schema.list_filters:
            if name not in query:
                continue
            if name == "customer_id":
                customer = self.store.find(caller.workspace, "customer", query[name])
                filters[name] = customer.id if customer else query[name]
            else:
                # *(decision)* a filter value outside the enum is 400 invalid_enum_value.
                filters[name] = clean_value(schema.field(name), query[name])
        return filters

    # -- creates -----------------------------------------------------------------------------

    def create_customer(self, caller: Caller, body: object, now_ms: int) -> Record:
        schema = self.schemas["customer"]
        fields = clean_body(schema, body, creating=True)
        if "slug" not in fields or fields["slug"] is None:
            fields["slug"] = derive_slug(fields["name"])
            if not fields["slug"]:
                raise invalid(
                    "slug",
                    "invalid_string",
                    "A slug cannot be derived from this name; pass a slug.",
                )
        self._ensure_slug_free(caller, fields["slug"], None)
        return self._create(caller, schema, fields, now_ms, customer_id=None)

    def create_contact(
        self, caller: Caller, customer_reference: str, body: object, now_ms: int
    ) -> Record:
        customer = self._live(caller, "customer", customer_reference)
        schema = self.schemas["contact"]
        fields = clean_body(schema, body, creating=True)
        self._ensure_email_free(customer.id, fields["email"], None)
        record = self._create(caller, schema, fields, now_ms, customer_id=customer.id)
        if record.body["is_primary"]:
            self._demote_other_primaries(record, now_ms)
        return record

    def create_onboarding(self, caller: Caller, body: object, now_ms: int) -> Record:
        schema = self.schemas["onboarding"]
        fields = clean_body(schema, body, creating=True)
        customer = self._live(caller, "customer", fields.pop("customer_id"))
        _stamp_onboarding(schema, fields, None, now_ms)
        return self._create(caller, schema, fields, now_ms, customer_id=customer.id)

    def _create(
        self,
        caller: Caller,
        schema: ObjectSchema,
        fields: dict[str, Any],
        now_ms: int,
        *,
        customer_id: str | None,
    ) -> Record:
        record_id = self.ids.new(now_ms)
        display_id = self.store.next_display_id(caller.workspace, schema.object)
        timestamp = format_ms(now_ms)
        if self.extra_fields:
            fields = {**fields, **newer_enum_defaults(schema.object, fields)}
        body: dict[str, Any] = {"object": schema.object, "id": record_id, "display_id": display_id}
        for field in schema.fields:
            if field.name == "customer_id":
                body["customer_id"] = customer_id
            elif field.name == "livemode":
                body["livemode"] = caller.livemode
            else:
                body[field.name] = fields.get(field.name, empty_value(field))
        if self.extra_fields:
            body.update(extra_fields(schema.object, record_id, display_id))
        body["created_at"] = timestamp
        body["updated_at"] = timestamp
        record = Record(
            id=record_id,
            object=schema.object,
            workspace=caller.workspace,
            display_id=display_id,
            customer_id=customer_id,
            created_ms=now_ms,
            deleted_ms=None,
            body=body,
            body_text=encode(body),
        )
        self.store.insert(record)
        return record

    # -- updates and deletes -----------------------------------------------------------------

    def update(
        self, caller: Caller, object_name: str, reference: str, body: object, now_ms: int
    ) -> Record:
        record = self._live(caller, object_name, reference)
        fields = clean_body(self.schemas[object_name], body, creating=False)
        if object_name == "customer" and fields.get("slug"):
            self._ensure_slug_free(caller, fields["slug"], record.id)
        if object_name == "customer" and "slug" in fields and not fields["slug"]:
            del fields["slug"]  # a customer always has a slug; null keeps the current one
        if object_name == "contact" and "email" in fields:
            assert record.customer_id is not None
            self._ensure_email_free(record.customer_id, fields["email"], record.id)
        if object_name == "onboarding":
            _stamp_onboarding(self.schemas["onboarding"], fields, record.body, now_ms)
        record.replace_body({**record.body, **fields, "updated_at": format_ms(now_ms)})
        self.store.update(record)
        if object_name == "contact" and fields.get("is_primary"):
            self._demote_other_primaries(record, now_ms)
        return record

    def delete(self, caller: Caller, object_name: str, reference: str, now_ms: int) -> str:
        """Soft-delete; deleting a deleted row answers the same body again."""
        record = self.store.find(caller.workspace, object_name, reference)
        if record is None:
            raise not_found(object_name, reference)
        if not record.deleted:
            record.deleted_ms = now_ms
            self.store.update(record)
        return encode(
            {"object": "deleted", "id": record.id, "display_id": record.display_id, "deleted": True}
        )

    # -- rules -------------------------------------------------------------------------------

    def _live(self, caller: Caller, object_name: str, reference: str) -> Record:
        record = self.store.find(caller.workspace, object_name, reference)
        if record is None or record.deleted:
            raise not_found(object_name, reference)
        return record

    def _ensure_slug_free(self, caller: Caller, slug: str, own_id: str | None) -> None:
        holder = self.store.live_customer_with_slug(caller.workspace, slug)
        if holder is not None and holder.id != own_id:
            raise conflict(
                "slug_taken", f"The slug '{slug}' belongs to customer {holder.id}.", "slug"
            )

    def _ensure_email_free(self, customer_id: str, email: str, own_id: str | None) -> None:
        for contact in self.store.live_contacts(customer_id):
            if contact.body["email"] == email and contact.id != own_id:
                raise conflict(
                    "email_taken",
                    f"The email '{email}' belongs to contact {contact.id} of this customer.",
                    "email",
                )

    def _demote_other_primaries(self, primary: Record, now_ms: int) -> None:
        assert primary.customer_id is not None
        for contact in self.store.live_contacts(primary.customer_id):
            if contact.id != primary.id and contact.body["is_primary"]:
                contact.replace_body(
                    {**contact.body, "is_primary": False, "updated_at": format_ms(now_ms)}
                )
                self.store.update(contact)


def _stamp_onboarding(
    schema: ObjectSchema, fields: dict[str, Any], current: Mapping[str, Any] | None, now_ms: int
) -> None:
    """Set `started_at` once the phase leaves the first one; `completed_at` while completed.

    *(decisions)* the docs only say that moving to `completed` sets `completed_at`.
    """
    if "phase" not in fields and current is not None:
        return
    first_phase = schema.field("phase").default
    phase = fields.get("phase") or first_phase
    now = format_ms(now_ms)
    started = current.get("started_at") if current else None
    if started is None and phase != first_phase:
        fields["started_at"] = now
    was_completed = current is not None and current.get("phase") == "completed"
    if phase == "completed" and not was_completed:
        fields["completed_at"] = now
    elif phase != "completed":
        fields["completed_at"] = None


def _page_size(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(text)
    except ValueError:
        # *(decision)* the page names too_big/too_small only; a limit that is no integer
        # at all is invalid_type.
        raise invalid("limit", "invalid_type", "limit must be an integer.") from None
    if size < 1:
        raise invalid("limit", "too_small", "limit must be at least 1.")
    if size > MAX_PAGE_SIZE:
        raise invalid("limit", "too_big", f"limit must be at most {MAX_PAGE_SIZE}.")
    return size


def _cursor(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return to_ms(parse_iso(text, zone_required=False))
    except ValueError:
        raise invalid(
            "cursor", "invalid_string", "cursor must be an ISO 8601 timestamp (a next_cursor)."
        ) from None
