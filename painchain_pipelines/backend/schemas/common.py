from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def iso_utc(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_ms(ms: int) -> str:
    return iso_utc(dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc))


def parse_iso8601(value: str) -> dt.datetime:
    """Parse an ISO 8601 timestamp; a missing offset means UTC. Raises ValueError."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string, e.g. 2025-01-01T12:00:00Z")
    text = value.strip()
    if len(text) < 10 or len(text) > 40:
        raise ValueError("must be an ISO 8601 timestamp, e.g. 2025-01-01T12:00:00Z")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not an ISO 8601 timestamp (e.g. 2025-01-01T12:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    # Checked before converting: an offset can move a moment past year 1 or 9999, which Python
    # cannot represent (9999-12-31T23:59:59-01:00 is in year 10000 in UTC).
    if not 1969 <= parsed.year <= 2201:
        raise ValueError("must be between 1970 and 2200")
    utc = parsed.astimezone(dt.timezone.utc)
    if not 1970 <= utc.year <= 2200:
        raise ValueError("must be between 1970 and 2200")
    return utc


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def to_epoch_ms(value: dt.datetime) -> int:
    return (value - _EPOCH) // dt.timedelta(milliseconds=1)
