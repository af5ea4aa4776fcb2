"""The sandbox's own reading of the API's timestamps: written one way, read as ISO 8601.

`pivotal-api.md`: "Timestamps are ISO 8601 UTC with milliseconds: `2026-05-26T17:21:09.412Z`".
The sandbox writes exactly that shape and, for request values, reads ISO 8601 date-times. It does
not use the client's parser, so that a client misreading of the format is not mirrored here.

*(decisions)*
- A request datetime (`target_launch_date`) needs a date, the `T` separator, a time and a zone
  (`Z` or `±hh:mm`); a date alone, a space instead of `T`, or no zone is `invalid_string`.
  It is stored converted to UTC in the API's own shape (milliseconds, `Z`).
- A list `cursor` without a zone is read as UTC (the API only ever hands out `Z` cursors).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(?P<zone>Z|z|[+-]\d{2}:?\d{2})?$"
)


def format_ms(epoch_ms: int) -> str:
    """Milliseconds since the epoch in the API's one format: `2026-05-26T17:21:09.412Z`."""
    moment = _EPOCH + timedelta(milliseconds=epoch_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def parse_iso(text: str, *, zone_required: bool = True) -> datetime:
    """An ISO 8601 date-time as an aware UTC datetime; ValueError when it is not one."""
    match = _ISO_DATETIME.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time")
    if match.group("zone") is None and zone_required:
        raise ValueError(f"{text!r} has no time zone")
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range") from None


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, truncating anything finer."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def format_datetime(moment: datetime) -> str:
    return format_ms(to_ms(moment))
