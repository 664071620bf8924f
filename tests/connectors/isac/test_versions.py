"""Sinks keep the source's newest version, never the last to arrive; a retraction withdraws
what its message brought and is not a version."""

from __future__ import annotations

import gc
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymisp import MISPEvent
from structlog.testing import capture_logs

from broker.errors import ConfigError
from connectors._convert import stix_to_misp
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


def stix(
    obj: dict[str, Any], message: str, sender: str = "soc-fr", bundle: str = "bundle--1"
) -> Delivered:
    return Delivered("StixObject", record_of(obj, bundle_id=bundle), "GREEN", message, sender,
                     WHEN)  # fmt: skip


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


INDICATOR = "indicator--00000000-0000-4000-8000-000000000002"
SIGHTING = {
    "type": "sighting", "spec_version": "2.1",
    "id": "sighting--00000000-0000-4000-8000-000000000003",
    "created": "2026-03-02T00:00:00.000Z", "modified": "2026-03-02T00:00:00.000Z",
    "sighting_of_ref": INDICATOR,
    "where_sighted_refs": ["identity--00000000-0000-4000-8000-000000000004"],
}  # fmt: skip


def indicator() -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": INDICATOR,
        "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z",
        "pattern": "[ipv4-addr:value = '203.0.113.5']", "pattern_type": "stix",
        "valid_from": "2026-03-01T00:00:00Z",
    }  # fmt: skip


BUNDLE = "bundle--00000000-0000-4000-8000-000000000005"


def misp_of_bundle(directory: Path) -> dict[str, Any]:
    (path,) = directory.glob("*.misp.json")
    event: dict[str, Any] = json.loads(path.read_text())["Event"]
    return event


async def test_a_sighting_before_the_identity_it_names_is_rendered(tmp_path: Path) -> None:
    """misp-stix raised on a sighting whose identities were not (yet) in the group."""
    sink = MispFileSink(tmp_path)
    await sink.deliver(stix(indicator(), "m1", bundle=BUNDLE))
    await sink.deliver(stix(SIGHTING, "m2", bundle=BUNDLE))
    await sink.close()
    event = misp_of_bundle(tmp_path)
    assert [a["value"] for a in event["Attribute"]] == ["203.0.113.5"]


@pytest.mark.parametrize("step", ["parse_stix", "stix_to_misp"])
async def test_a_group_misp_stix_cannot_convert_is_logged_and_the_sink_goes_on(
    step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: Any, **__: Any) -> dict[str, Any]:
        raise ConfigError("STIX objects cannot be written as MISP: boom")

    sink = MispFileSink(tmp_path)
    await sink.deliver(stix(indicator(), "m1", bundle=BUNDLE))
    with monkeypatch.context() as patched:
        patched.setattr(f"connectors.isac.sinks.{step}", refuse)
        with capture_logs() as logs:
            await sink.flush(final=True)
    (failed,) = [e for e in logs if e["event"] == "misp event not rendered"]
    assert failed["log_level"] == "error" and failed["objects"] == 1
    assert failed["reason"].endswith("boom") and failed["group"] == BUNDLE
    assert not list(tmp_path.glob("*.misp.json"))
    await sink.deliver(stix(SIGHTING, "m2", bundle=BUNDLE))  # the group changes: rendered with both
    await sink.close()
    assert [a["value"] for a in misp_of_bundle(tmp_path)["Attribute"]] == ["203.0.113.5"]


async def test_a_group_is_converted_with_the_collector_held_off_and_it_is_back_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector walking a large event's objects again and again was a third of a
    rewrite's CPU (`broker.heap.gc_paused`); a refusal still turns it back on."""
    seen: list[bool] = []

    def converting(objects: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append(gc.isenabled())
        if len(seen) == 1:
            raise ConfigError("STIX objects cannot be written as MISP: boom")
        return stix_to_misp(objects, **kwargs)

    gc.enable()
    sink = MispFileSink(tmp_path)
    monkeypatch.setattr("connectors.isac.sinks.stix_to_misp", converting)
    await sink.deliver(stix(indicator(), "m1", bundle=BUNDLE))
    await sink.flush(final=True)  # refused: logged, not rendered
    assert gc.isenabled()
    await sink.deliver(stix(SIGHTING, "m2", bundle=BUNDLE))
    await sink.close()
    assert seen == [False, False] and gc.isenabled()
    assert [a["value"] for a in misp_of_bundle(tmp_path)["Attribute"]] == ["203.0.113.5"]


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


_ADDS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),  # object
        st.integers(0, 3),  # version
        st.sampled_from(["m1", "m2", "m3", "m4", "m5"]),  # message
        st.sampled_from(["bundle--1", "bundle--2", None]),  # group
    ),
    max_size=14,
)


@settings(max_examples=150, deadline=None)
@given(_ADDS, st.lists(st.sampled_from(["m1", "m2", "m3"]), max_size=2))
def test_a_group_shows_the_newest_version_of_each_of_its_objects(
    tmp_path_factory: pytest.TempPathFactory,
    adds: list[tuple[str, int, str, str | None]],
    retracted: list[str],
) -> None:
    """`group` (one query) is `newest` of every object a version of which came in the group,
    by object id: ties to the last to arrive, withdrawn versions skipped, even when the
    newest version came in another group."""
    index = VersionIndex(tmp_path_factory.mktemp("versions") / "v.sqlite")
    for n, (obj, version, message, group) in enumerate(adds):
        index.add(Version(obj, version, str(version), message, "soc-fr", group, (), f"body {n}"))
    for message in retracted:
        index.retract(message)
    kept = {(obj, version, message): g for obj, version, message, g in adds}  # the last wins
    for group in ("bundle--1", "bundle--2"):
        ids = sorted({obj for (obj, _, _), g in kept.items() if g == group})
        expected = [v for v in (index.newest(i) for i in ids) if v is not None]
        assert index.group(group) == expected
    index.close()
