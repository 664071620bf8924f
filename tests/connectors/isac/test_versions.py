"""Sinks keep the source's newest version, never the last to arrive; a retraction withdraws
what its message brought and is not a version."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymisp import MISPEvent

from broker.errors import ConfigError
from connectors._misp_event import record_of as misp_record
from connectors._stix_object import record_of
from connectors.isac import Delivered, MispFileSink, StixFileSink
from connectors.isac._versions import Version, VersionIndex

WHEN = datetime(2026, 3, 1, tzinfo=UTC)
MALWARE = "malware--00000000-0000-4000-8000-000000000001"


def malware(day: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "malware",
        "spec_version": "2.1",
        "id": MALWARE,
        "created": "2026-03-01T00:00:00.000Z",
        "modified": f"2026-03-{day:02d}T00:00:00.000Z",
        "name": f"version of day {day}",
        "is_family": True,
        **extra,
    }


def stix(obj: dict[str, Any], message: str, sender: str = "soc-fr") -> Delivered:
    return Delivered("StixObject", record_of(obj, bundle_id="bundle--1"), "GREEN", message,
                     sender, WHEN)  # fmt: skip


def shown(sink: StixFileSink) -> dict[str, Any] | None:
    path = sink.object_path(MALWARE)
    if not path.exists():
        return None
    (obj,) = json.loads(path.read_text())["objects"]
    return obj


async def test_an_older_version_arriving_late_changes_nothing(tmp_path: Path) -> None:
    sink = StixFileSink(tmp_path)
    await sink.deliver(stix(malware(2), "m2"))
    await sink.deliver(stix(malware(1), "m1"))  # older, later
    await sink.flush()
    assert shown(sink) == malware(2)
    await sink.deliver(stix(malware(3, revoked=True), "m3"))  # the source revokes it
    assert shown(sink) == malware(3, revoked=True)
    await sink.close()


async def test_a_retraction_withdraws_its_version_and_the_newest_left_is_shown(
    tmp_path: Path,
) -> None:
    sink = StixFileSink(tmp_path)
    for day in (1, 2):
        await sink.deliver(stix(malware(day), f"m{day}"))
    await sink.retract("m2", WHEN)
    assert shown(sink) == malware(1)  # not a revoked version: the source's older one
    await sink.retract("m1", WHEN)
    assert shown(sink) is None
    await sink.deliver(stix(malware(2), "m2"))  # a late re-delivery of a retracted message
    assert shown(sink) is None
    await sink.close()
    reopened = StixFileSink(tmp_path)  # the versions survive a restart
    await reopened.deliver(stix(malware(3), "m3"))
    assert shown(reopened) == malware(3)
    await reopened.close()


async def test_another_sender_may_not_version_an_object(tmp_path: Path) -> None:
    sink = StixFileSink(tmp_path)
    await sink.deliver(stix(malware(1), "m1"))
    with pytest.raises(ConfigError, match="soc-fr; cert-eu may not version it"):
        await sink.deliver(stix(malware(9), "x", sender="cert-eu"))
    assert shown(sink) == malware(1)
    await sink.close()


def event(stamp: int, info: str) -> dict[str, Any]:
    return {
        "uuid": "5758ebf5-c898-48e6-9fe9-5665c0a83866",
        "info": info,
        "date": "2026-03-01",
        "timestamp": str(stamp),
        "Orgc": {"name": "ACME", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
        "Attribute": [
            {"uuid": "00000000-0000-4000-8000-000000000001", "type": "ip-dst|port",
             "value": "203.0.113.5|8443", "category": "Network activity", "to_ids": True}
        ],
    }  # fmt: skip


async def test_a_misp_event_is_updated_in_place_by_its_timestamp(tmp_path: Path) -> None:
    sink = MispFileSink(tmp_path)
    for stamp, info in ((1772438400, "newer"), (1772352000, "older")):
        item = Delivered("MispEvent", misp_record(event(stamp, info)), "GREEN", info, "soc-fr",
                         WHEN)  # fmt: skip
        await sink.deliver(item)
    await sink.close()
    (path,) = tmp_path.glob("*.misp.json")
    loaded = MISPEvent()
    loaded.load_file(str(path))
    assert loaded.info == "newer" and loaded.Orgc.name == "soc-fr"


@settings(max_examples=100, deadline=None)
@given(
    days=st.lists(st.integers(1, 28), min_size=1, max_size=8, unique=True),
    order=st.randoms(use_true_random=False),
    retracted=st.sets(st.integers(0, 7), max_size=4),
)
def test_the_index_shows_the_newest_version_not_withdrawn_in_any_order(
    tmp_path_factory: pytest.TempPathFactory, days: list[int], order: Any, retracted: set[int]
) -> None:
    index = VersionIndex(tmp_path_factory.mktemp("idx") / "v.sqlite")
    arrivals = list(enumerate(days))
    order.shuffle(arrivals)
    for n, day in arrivals:
        index.add(Version(MALWARE, day, str(day), f"m{n}", "soc-fr", None, (), "{}"))
        if n in retracted:
            index.retract(f"m{n}")
    left = [day for n, day in enumerate(days) if n not in retracted]
    newest = index.newest(MALWARE)
    assert (newest.version_us if newest else None) == (max(left) if left else None)
    index.close()
