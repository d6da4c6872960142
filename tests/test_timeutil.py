"""Stored instants read back as the same aware UTC datetimes, to the microsecond."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from headroom_memory.timeutil import from_micros, to_micros


@pytest.mark.parametrize("instant", [
    datetime(1970, 1, 1, tzinfo=timezone.utc),
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),  # just before the epoch
    datetime(1901, 3, 4, 5, 6, 7, 1, tzinfo=timezone.utc),
    datetime(2026, 11, 27, 8, 15, 30, 123_456, tzinfo=timezone.utc),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
    datetime(2026, 6, 1, 12, 0, 0, 42, tzinfo=timezone(timedelta(hours=-7))),  # converted to UTC
])
def test_an_instant_survives_the_round_trip_through_microseconds(instant: datetime) -> None:
    restored = from_micros(to_micros(instant))
    assert restored == instant
    assert restored.utcoffset() == timedelta(0)


def test_a_naive_datetime_is_taken_as_utc() -> None:
    assert from_micros(to_micros(datetime(2024, 2, 29, 1, 2, 3, 4))) == datetime(
        2024, 2, 29, 1, 2, 3, 4, tzinfo=timezone.utc)
