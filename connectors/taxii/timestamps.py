"""TAXII/STIX timestamps <-> integer microseconds since the epoch (UTC).

The store orders and compares by integers; the wire carries RFC 3339 strings
ending in `Z`. Precision beyond microseconds is accepted and truncated.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PATTERN = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|\+00:00)$"
)


def parse_us(value: str) -> int:
    """Microseconds since the epoch of a UTC timestamp; ValueError if it is not one."""
    m = _PATTERN.match(value.strip())
    if m is None:
        raise ValueError(f"not a UTC timestamp (YYYY-MM-DDTHH:MM:SS[.s]Z): {value!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction = (m.group(7) or "")[:6].ljust(6, "0")
    moment = datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=UTC)
    return to_us(moment)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (naive is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_us(us: int) -> str:
    """The RFC 3339 form TAXII uses for `date_added`, always with 6 fraction digits."""
    moment = _EPOCH + timedelta(microseconds=us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
