"""How operators write times, delays, kinds and choices on the command line of `jcu assist`
and `jcu capabilities`: `24h`, `2d`, ISO 8601, `incident-response`, `on-site`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from broker.assist.steps import KINDS
from broker.clock import utc_now
from broker.errors import ConfigError

_HOURS = re.compile(r"^\s*(\d+)\s*([hdm]?)\s*$")


def hours(value: str, what: str) -> int:
    """`24`, `24h`, `2d` or `90m` as whole hours (minutes rounded up)."""
    m = _HOURS.match(value)
    if not m:
        raise ConfigError(f"{what} {value!r}: give hours (24, 24h), days (2d) or minutes (90m)")
    n, unit = int(m.group(1)), m.group(2) or "h"
    return {"h": n, "d": 24 * n, "m": -(-n // 60)}[unit]


def when(value: str | None, what: str) -> datetime | None:
    """An ISO 8601 time (UTC if no zone) or a time from now: `12h`, `2d`."""
    if value is None:
        return None
    m = _HOURS.match(value)
    if m and m.group(2):
        return utc_now() + timedelta(hours=hours(value, what))
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{what} {value!r}: give an ISO 8601 time or a delay (12h, 2d)") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def kind_of(value: str) -> str:
    """`incident-response`, `INCIDENT_RESPONSE`, `incident response` -> INCIDENT_RESPONSE."""
    k = re.sub(r"[\s-]+", "_", value.strip()).upper()
    if k not in KINDS:
        words = ", ".join(x.lower().replace("_", "-") for x in KINDS)
        raise ConfigError(f"kind {value!r} is not one of {words}")
    return k


def word(symbol: str) -> str:
    """INCIDENT_RESPONSE -> incident response, as people write it."""
    return symbol.lower().replace("_", " ")


def choice_of(value: str, choices: Iterable[str], what: str) -> str:
    v = re.sub(r"[\s-]+", "_", value.strip()).upper()
    if v not in choices:
        words = ", ".join(c.lower().replace("_", "-") for c in choices)
        raise ConfigError(f"{what} {value!r} is not one of {words}")
    return v
