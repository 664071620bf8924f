"""How `jcu assist` and `jcu capabilities` read delays, times, kinds and choices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.cli._parse import choice_of, hours, kind_of, when
from broker.clock import utc_now
from broker.errors import ConfigError


def test_delays_in_hours() -> None:
    assert [hours(v, "x") for v in ("24", "24h", "2d", "90m", " 1h ")] == [24, 24, 48, 2, 1]
    with pytest.raises(ConfigError, match="give hours"):
        hours("soon", "--notice")


def test_times_absolute_or_from_now() -> None:
    assert when("2026-12-01T08:00", "x") == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert when("2026-12-01T08:00Z", "x") == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    ahead = when("6h", "x")
    assert ahead is not None and abs(ahead - (utc_now() + timedelta(hours=6))) < timedelta(1)
    assert when(None, "x") is None
    with pytest.raises(ConfigError, match="ISO 8601"):
        when("tomorrow", "--deadline")


def test_kinds_and_choices_as_people_write_them() -> None:
    assert kind_of("incident-response") == kind_of("Incident Response") == "INCIDENT_RESPONSE"
    with pytest.raises(ConfigError, match="rapid-reaction-team"):
        kind_of("plumbing")
    assert choice_of("on-site", ("REMOTE", "ON_SITE"), "deployment") == "ON_SITE"
    with pytest.raises(ConfigError, match="deployment 'moon'"):
        choice_of("moon", ("REMOTE", "ON_SITE"), "deployment")
