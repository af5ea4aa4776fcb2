"""The sandbox's own reading of the customer slug rules of `pivotal-api.md`.

The API page says a slug matches `^[a-z0-9]+(-[a-z0-9]+)*$`, is at most 64 characters, and, when
omitted, is "derived from `name`: lowercased, every run of characters other than ASCII `a-z0-9`
— accented letters included — becomes `-`, trimmed, cut to 64". This module implements exactly
that sentence, independently of the client (which must not predict and send slugs):

- **No accent folding**: `Café Müller` → `caf-m-ller`. An accented letter is a character other
  than ASCII `a-z0-9`, so it becomes (part of a run that becomes) one `-`.
- *(decision)* "lowercased" lowercases ASCII `A-Z` only. Characters whose Unicode lowercase is
  ASCII (the Kelvin sign `K` U+212A, `İ` U+0130) are still "characters other than ASCII
  `a-z0-9`" and become `-`, so the rule does not depend on Python's Unicode tables.
- *(decision)* A `-` left at the end by the cut to 64 is trimmed too, so the result may be
  shorter than 64: the derived slug must match the documented slug pattern, which forbids a
  trailing `-` (`"x" * 63 + " y"` → `"x" * 63`).
- *(decision)* A name that leaves nothing (`"!!!"`, `"日本"`) derives the empty slug, which is not
  a slug: the create answers `400 invalid_request_error invalid_string` with field `slug` (the
  page lists `invalid_string` for a bad slug format), asking the caller to pass a slug.
"""

from __future__ import annotations

import re

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
"""Copied from `pivotal-api.md`, not imported, so that the two sides read the page apart."""
SLUG_MAX_CHARS = 64
_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_NOT_SLUG_CHARS = re.compile(r"[^a-z0-9]+")


def derive_slug(name: str) -> str:
    """The slug the sandbox gives a customer created without one; '' when nothing is left."""
    lowered = name.translate(_ASCII_UPPER)
    dashed = _NOT_SLUG_CHARS.sub("-", lowered).strip("-")
    return dashed[:SLUG_MAX_CHARS].rstrip("-")


def is_slug(text: str) -> bool:
    return SLUG_PATTERN.match(text) is not None
