"""Time helpers: every instant is stored as aware UTC, as integer microseconds.

Naive datetimes given by a caller are taken to be UTC (documented on every public
call that accepts a datetime); aware ones are converted to UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .errors import InvalidInputError

__all__ = ["from_micros", "to_micros", "to_utc", "utc_now"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def utc_now() -> datetime:
    """The current instant as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def to_utc(value: datetime, *, name: str = "datetime") -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive value is taken as UTC."""
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def to_micros(value: datetime) -> int:
    """Microseconds since the Unix epoch of an aware (or naive-as-UTC) datetime."""
    delta = to_utc(value) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """The aware UTC datetime of a microsecond timestamp made by :func:`to_micros`."""
    return _EPOCH + timedelta(microseconds=int(value))
