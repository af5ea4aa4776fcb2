"""The Pivotal API's objects as data: fields, types, enums and limits.

One table serves both sides of the project, as data only: the sandbox applies it strictly with
rules of its own (`bulk.sandbox.validation`, `slugs`, `timestamps`), and the importer uses it to
turn spreadsheet cells into API values tolerantly (`bulk.importing.cells`). The few functions
below (timestamps, canonical JSON for payload hashes) are the client's; the sandbox imports none
of them, so a misreading of the API on one side is not mirrored by the other.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any

CUSTOMER_STATUSES = ("onboarding", "active", "at_risk", "churned", "archived")
ONBOARDING_PHASES = (
    "before_getting_started",
    "program_design",
    "review",
    "program_buildout",
    "internal_qa",
    "launch",
    "completed",
)
ONBOARDING_STATES = ("active", "paused", "at_risk", "waiting")

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SLUG_MAX_LENGTH = 64
NAME_MAX_LENGTH = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"
"""`format_timestamp` in chrono's spelling, for polars (both truncate to milliseconds)."""
LIVE_KEY_RATE_LIMIT = 60
"""Requests per window of a live key, the documented default (assumed until a header says)."""
RATE_WINDOW_S = 60.0
"""The documented sliding window."""


class Kind(Enum):
    """The JSON type a field holds on the wire."""

    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    ENUM = "enum"
    EMAIL = "email"
    SLUG = "slug"
    STRING_LIST = "string_list"
    JSON_OBJECT = "json_object"
    REFERENCE = "reference"
    """An `id` or `display_id` of another object."""


@dataclass(frozen=True)
class Field:
    """One writable or read-only field of an API object."""

    name: str
    kind: Kind
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    """Smallest integer value, or shortest string length."""
    maximum: int | None = None
    """Largest integer value, or longest string length."""
    default: object = None
    lowercase: bool = False
    read_only: bool = False
    create_only: bool = False
    """Set on create and ignored by PATCH (a contact's customer, say)."""


@dataclass(frozen=True)
class ObjectSchema:
    """An API object type: its name, its fields in response order, and its list filters."""

    object: str
    """The `object` the API's envelope names (`customer`)."""
    collection: str
    """The plural that names its endpoint, its import pass and its export file (`customers`)."""
    fields: tuple[Field, ...]
    list_filters: tuple[str, ...] = ()

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(name)

    def writable(self) -> Iterator[Field]:
        return (field for field in self.fields if not field.read_only)

    def field_names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)


def _string(name: str, **options: object) -> Field:
    return Field(name, Kind.STRING, **options)  # type: ignore[arg-type]


CUSTOMER = ObjectSchema(
    object="customer",
    collection="customers",
    fields=(
        _string("name", required=True, minimum=1, maximum=NAME_MAX_LENGTH),
        Field("slug", Kind.SLUG, maximum=SLUG_MAX_LENGTH),
        _string("domain", lowercase=True),
        Field("status", Kind.ENUM, choices=CUSTOMER_STATUSES, default="onboarding"),
        _string("plan"),
        _string("owner_id"),
        Field("mrr", Kind.INTEGER, minimum=0),
        _string("hubspot_company_id"),
        _string("hubspot_deal_id"),
        _string("stripe_customer_id"),
        _string("intercom_company_id"),
        _string("slack_channel_id"),
        Field("tags", Kind.STRING_LIST, default=()),
        Field("metadata", Kind.JSON_OBJECT),
        Field("livemode", Kind.BOOLEAN, read_only=True),
    ),
    list_filters=("status",),
)

CONTACT = ObjectSchema(
    object="contact",
    collection="contacts",
    fields=(
        Field("customer_id", Kind.REFERENCE, read_only=True),
        _string("name", required=True, minimum=1),
        Field("email", Kind.EMAIL, required=True, lowercase=True),
        _string("title"),
        _string("phone"),
        Field("is_primary", Kind.BOOLEAN, default=False),
        Field("labels", Kind.STRING_LIST, default=()),
        Field("livemode", Kind.BOOLEAN, read_only=True),
    ),
)

ONBOARDING = ObjectSchema(
    object="onboarding",
    collection="onboardings",
    fields=(
        Field("customer_id", Kind.REFERENCE, required=True, create_only=True),
        _string("name"),
        Field("phase", Kind.ENUM, choices=ONBOARDING_PHASES, default="before_getting_started"),
        Field("state", Kind.ENUM, choices=ONBOARDING_STATES, default="active"),
        Field("target_launch_date", Kind.DATETIME),
        _string("notes"),
        _string("csm_id"),
        _string("se_id"),
        _string("designer_id"),
        _string("product_ops_id"),
        _string("template_id"),
        Field("waiting_on_customer", Kind.BOOLEAN, default=False),
        Field("reminders_enabled", Kind.BOOLEAN, default=True),
        Field("reminder_frequency_days", Kind.INTEGER, minimum=1, default=1),
        Field("started_at", Kind.DATETIME, read_only=True),
        Field("completed_at", Kind.DATETIME, read_only=True),
        Field("livemode", Kind.BOOLEAN, read_only=True),
    ),
    list_filters=("customer_id", "state", "phase"),
)

OBJECT_SCHEMAS = (CUSTOMER, CONTACT, ONBOARDING)
"""Every object type, parents first: the order of the import passes."""
SCHEMAS = {schema.object: schema for schema in OBJECT_SCHEMAS}
COLLECTIONS = {schema.collection: schema for schema in OBJECT_SCHEMAS}


_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
"""One encoder for every call: `json.dumps` with options builds a new one each time."""


def canonical_json(document: Any) -> str:
    """One spelling per JSON document (sorted keys, compact, UTF-8): what payload hashes hash."""
    return _CANONICAL.encode(document)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds, the API's only timestamp format."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def now_timestamp() -> str:
    """`format_timestamp` of now, without the datetime (it is called for every row written):
    the date and time of day are formatted once a second."""
    epoch_ms = time.time_ns() // 1_000_000
    seconds, ms = divmod(epoch_ms, 1000)
    return f"{_second_text(seconds)}.{ms:03d}Z"


@lru_cache(maxsize=2)
def _second_text(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def format_epoch_ms(epoch_ms: int) -> str:
    return format_timestamp(datetime.fromtimestamp(epoch_ms / 1000, tz=UTC))


def parse_timestamp(text: str, *, assume_utc: bool = False) -> datetime:
    """Parse an ISO 8601 datetime; raise ValueError when it has no time or no zone.

    A naive datetime is accepted as UTC only when `assume_utc` is set.
    """
    if "T" not in text and " " not in text.strip():
        raise ValueError(f"{text!r} has no time part")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        if not assume_utc:
            raise ValueError(f"{text!r} has no time zone")
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range") from None


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch, truncating anything finer (exact, no float rounding)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)
