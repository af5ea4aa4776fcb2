"""`--extra-fields`: the sandbox as a newer API version than the one `bulk` was written for.

`pivotal-api.md` asks the client to be tolerant: "unknown response fields are ignored, unknown
enum values pass through". In this mode the sandbox gives the client something to tolerate,
deterministically, so that tests can check import ignores it and export keeps it:

- **Extra fields on every object** (GET, lists, POST, PATCH, idempotent replays — they are part
  of the stored object), placed before `created_at` as a newer API would add them:

  | object     | extra fields                                                              |
  |------------|---------------------------------------------------------------------------|
  | customer   | `monthly_orders` (integer, the page's example), `health_score` (integer), |
  |            | `health` (a string enum: always `"thriving"`), `address` (nested object), |
  |            | `integrations` (array of objects)                                         |
  | contact    | `linkedin_url` (string), `timezone` (string)                              |
  | onboarding | `checklist_progress` (nested object), `risk_level` (always `"elevated"`)  |

  Their values derive from the object's `display_id` only (see `extra_fields`), so a test can
  write them out literally.
- **Unknown values of known enums**, set by the sandbox itself: a customer created *without* a
  `status` whose `name` starts with `"Future"` gets `status: "paused_billing"`, and an
  onboarding created without a `state` whose `name` starts with `"Future"` gets
  `state: "on_hold"`. Every other create gets the documented defaults.
- A newer API accepts its own newer values: in this mode `paused_billing` and `on_hold` are
  also valid in request bodies and list filters *(decision)*, so that an export taken from this
  mode can be imported back into it. Request *fields* stay exactly the documented ones: the
  extra fields are read-only, and sending them is ignored like any unknown field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bulk.schema import SCHEMAS, ObjectSchema

FUTURE_PREFIX = "Future"
NEWER_ENUM_VALUES: dict[str, dict[str, str]] = {
    "customer": {"status": "paused_billing"},
    "onboarding": {"state": "on_hold"},
}
"""Per object, the enum field the sandbox sets to a newer value, and that value."""


def newer_schemas() -> dict[str, ObjectSchema]:
    """The object tables with the newer enum values added to the fields' choices."""
    schemas: dict[str, ObjectSchema] = {}
    for name, schema in SCHEMAS.items():
        newer = NEWER_ENUM_VALUES.get(name, {})
        fields = tuple(
            dataclasses.replace(field, choices=(*field.choices, newer[field.name]))
            if field.name in newer
            else field
            for field in schema.fields
        )
        schemas[name] = dataclasses.replace(schema, fields=fields)
    return schemas


def newer_enum_defaults(object_name: str, given: Mapping[str, Any]) -> dict[str, str]:
    """The newer enum values a create gets: only for a `Future…` name, only for omitted fields."""
    name = given.get("name")
    if not isinstance(name, str) or not name.startswith(FUTURE_PREFIX):
        return {}
    return {
        field: value
        for field, value in NEWER_ENUM_VALUES.get(object_name, {}).items()
        if given.get(field) is None
    }


def extra_fields(object_name: str, record_id: str, display_id: int) -> dict[str, Any]:
    """The fields this version of the API does not document, for one new object."""
    n = display_id
    if object_name == "customer":
        return {
            "monthly_orders": 10 * n,
            "health_score": 50 + n % 50,
            "health": "thriving",
            "address": {"city": "Springfield", "country_code": "US", "lines": [f"{n} Main St"]},
            "integrations": [{"kind": "slack", "connected": True}],
        }
    if object_name == "contact":
        return {"linkedin_url": f"https://www.linkedin.com/in/{record_id}", "timezone": "UTC"}
    if object_name == "onboarding":
        return {"checklist_progress": {"done": 0, "total": 12}, "risk_level": "elevated"}
    return {}
