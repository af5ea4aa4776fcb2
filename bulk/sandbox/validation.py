"""Strict validation of request bodies, as `pivotal-api.md` documents it and no stricter.

Each check raises the first problem it finds as a 400 with the documented `code` and `field`;
unknown and read-only fields are ignored. Returned values are normalised (lowercased emails and
domains, timestamps in the API's format), ready to store.

Only the *data* of `bulk.schema` is used (field names, kinds, enums, documented limits); every
check is written here from the API page. Where `bulk.schema` carries a limit the page does not
state, `documented` drops it (see `_UNDOCUMENTED_LIMITS`); the sandbox's own decisions on what
the page leaves open are marked *(decision)*.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bulk.schema import Field, Kind, ObjectSchema

from .problems import ApiProblem, invalid
from .slugs import is_slug
from .timestamps import format_datetime, parse_iso

# Kept although the page is silent, as the sandbox's own *(decisions)*:
# - a required `name` must not be empty ("" is `too_small`): customers are documented 1-200;
# - `reminder_frequency_days` is at least 1 (`too_small`): a reminder every 0 days is no setting.


def clean_body(schema: ObjectSchema, body: object, *, creating: bool) -> dict[str, Any]:
    """The writable fields present in `body`, validated and normalised."""
    if not isinstance(body, dict):
        # *(decision)* valid JSON that is not an object: invalid_type, with no field.
        raise invalid(None, "invalid_type", "The request body must be a JSON object.")
    cleaned: dict[str, Any] = {}
    for field in schema.writable():
        if not creating and field.create_only:
            continue
        if field.name not in body or (creating and body[field.name] is None):
            if creating and field.required:
                raise invalid(field.name, "missing_field", f"{field.name} is required.")
            continue
        cleaned[field.name] = clean_value(field, body[field.name])
    return cleaned


def empty_value(field: Field) -> Any:
    """What a field holds when it is not set (null clears a field back to this)."""
    if field.kind is Kind.STRING_LIST:
        return []
    if field.kind is Kind.JSON_OBJECT:
        return {}
    return field.default


def clean_value(field: Field, value: object) -> Any:
    if value is None:
        if field.required:
            raise invalid(field.name, "invalid_type", f"{field.name} cannot be null.")
        return empty_value(field)
    return _CHECKS[field.kind](field, value)


def _type_error(field: Field, expected: str) -> ApiProblem:
    return invalid(field.name, "invalid_type", f"{field.name} must be {expected}.")


def _check_length(field: Field, text: str) -> None:
    if field.minimum is not None and len(text) < field.minimum:
        raise invalid(
            field.name, "too_small", f"{field.name} must be at least {field.minimum} characters."
        )
    if field.maximum is not None and len(text) > field.maximum:
        raise invalid(
            field.name, "too_big", f"{field.name} must be at most {field.maximum} characters."
        )


def _string(field: Field, value: object) -> str:
    if not isinstance(value, str):
        raise _type_error(field, "a string")
    _check_length(field, value)
    return value.lower() if field.lowercase else value


def _integer(field: Field, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _type_error(field, "an integer")
    if field.minimum is not None and value < field.minimum:
        raise invalid(field.name, "too_small", f"{field.name} must be at least {field.minimum}.")
    if field.maximum is not None and value > field.maximum:
        raise invalid(field.name, "too_big", f"{field.name} must be at most {field.maximum}.")
    return value


def _boolean(field: Field, value: object) -> bool:
    if not isinstance(value, bool):
        raise _type_error(field, "a boolean")
    return value


def _datetime(field: Field, value: object) -> str:
    if not isinstance(value, str):
        raise _type_error(field, "an ISO 8601 datetime string")
    try:
        return format_datetime(parse_iso(value))
    except ValueError:
        raise invalid(
            field.name,
            "invalid_string",
            f"{field.name} must be an ISO 8601 datetime with a time zone, "
            "like 2026-05-26T17:21:09.412Z.",
        ) from None


def _enum(field: Field, value: object) -> str:
    if not isinstance(value, str):
        raise _type_error(field, "a string")
    if value not in field.choices:
        raise invalid(
            field.name,
            "invalid_enum_value",
            f"{field.name} must be one of: {', '.join(field.choices)}.",
        )
    return value


def _email(field: Field, value: object) -> str:
    """*(decision)* The page says only "bad format"; the sandbox refuses what is plainly not an
    address (no `@` or more than one, an empty local part or domain, whitespace) and accepts the
    rest (`bob@localhost`, `a+b@x`), with no length limit."""
    text = _string(field, value)
    local, at, domain = text.partition("@")
    if not at or not local or not domain or "@" in domain or any(c.isspace() for c in text):
        raise invalid(field.name, "invalid_string", f"{field.name} must be an email address.")
    return text


def _slug(field: Field, value: object) -> str:
    text = _string(field, value)
    if not is_slug(text):
        raise invalid(
            field.name,
            "invalid_string",
            f"{field.name} must be lowercase letters and digits separated by single hyphens.",
        )
    return text


def _string_list(field: Field, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _type_error(field, "an array of strings")
    return value


def _json_object(field: Field, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _type_error(field, "a JSON object")
    return value


def _reference(field: Field, value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise _type_error(field, "an id or a display_id")


_CHECKS: dict[Kind, Callable[[Field, object], Any]] = {
    Kind.STRING: _string,
    Kind.INTEGER: _integer,
    Kind.BOOLEAN: _boolean,
    Kind.DATETIME: _datetime,
    Kind.ENUM: _enum,
    Kind.EMAIL: _email,
    Kind.SLUG: _slug,
    Kind.STRING_LIST: _string_list,
    Kind.JSON_OBJECT: _json_object,
    Kind.REFERENCE: _reference,
}
