"""Fixtures for the TAXII tests: STIX objects made with the `stix2` library."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import stix2

TOPIC = "jcu.civilian.indicators"
OTHER_TOPIC = "jcu.civilian.reports"


def indicator(n: int) -> stix2.Indicator:
    return stix2.Indicator(
        id=f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, f'urn:test:indicator:{n}')}",
        name=f"C2 address {n}",
        pattern=f"[ipv4-addr:value = '198.51.100.{n}']",
        pattern_type="stix",
        valid_from=datetime(2026, 11, 1, tzinfo=UTC),
        created=datetime(2026, 11, 1, 12, 0, n, tzinfo=UTC),
        modified=datetime(2026, 11, 1, 12, 0, n, tzinfo=UTC),
    )


@pytest.fixture
def indicators() -> list[stix2.Indicator]:
    return [indicator(n) for n in range(1, 8)]
