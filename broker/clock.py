"""Time as the broker records it: timezone-aware UTC, millisecond precision.

Avro `timestamp-millis` keeps milliseconds; comparing a stored time with a
clock reading at finer precision would make "at the revocation time" depend on
microseconds that were never stored. Components take a `Clock` so tests can
fix the time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def to_millis(t: datetime) -> datetime:
    """`t` in UTC, truncated to whole milliseconds (naive times are taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    t = t.astimezone(UTC)
    return t.replace(microsecond=t.microsecond - t.microsecond % 1000)


def utc_now() -> datetime:
    return to_millis(datetime.now(UTC))
