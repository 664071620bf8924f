"""The MispEvent record and its parts: lossless through Avro; removing a part leaves nothing
that points at it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymisp import MISPEvent

from broker.schemas import SchemaStore
from connectors._misp_event import (
    all_attributes,
    attribute_part,
    event_of,
    object_part,
    record_of,
    remove_parts,
)

FIXTURE = Path(__file__).parent / "fixtures" / "misp" / "blackwidow-event.json"


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return SchemaStore.load(Path(__file__).resolve().parents[2] / "schemas")


def _event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads(FIXTURE.read_text())["Event"]
    return event


def test_the_whole_event_survives_the_avro_record(store: SchemaStore) -> None:
    event = _event()
    _, decoded = store.decode(store.encode("MispEvent", record_of(event)))
    assert event_of(decoded) == event
    assert decoded["attribute_count"] == 14 and decoded["object_count"] == 2
    assert decoded["galaxy_clusters"] == ['misp-galaxy:threat-actor="Spider"']
    assert decoded["source_orgc"] == "ACME SOC"


def _parts(event: dict[str, Any]) -> list[str]:
    return [attribute_part(a["uuid"]) for a in all_attributes(event)] + [
        object_part(o["uuid"]) for o in event["Object"]
    ]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_nothing_left_points_at_a_removed_part(data: st.DataObject) -> None:
    event = _event()
    removed = data.draw(st.lists(st.sampled_from(_parts(event)), max_size=6, unique=True))
    out = remove_parts(event, removed)
    left = {a["uuid"] for a in all_attributes(out)} | {o["uuid"] for o in out["Object"]}
    gone = {p.split("/", 1)[1] for p in removed}
    assert left.isdisjoint(gone)
    # what was not removed is still there, unchanged
    for attribute in all_attributes(event):
        parent = next((o["uuid"] for o in event["Object"] if attribute in o["Attribute"]), None)
        emptied = parent is not None and all(
            a["uuid"] in gone
            for o in event["Object"]
            if o["uuid"] == parent
            for a in o["Attribute"]
        )
        if attribute["uuid"] not in gone and parent not in gone and not emptied:
            assert attribute in list(all_attributes(out))
    for obj in out["Object"]:
        assert obj["Attribute"]
        for ref in obj.get("ObjectReference", []):
            assert ref["referenced_uuid"] in left
    for sighting in out["Sighting"]:
        assert sighting["attribute_uuid"] in left
    loaded = MISPEvent()
    loaded.load({"Event": out})  # still an event PyMISP reads
    assert loaded.uuid == event["uuid"]


def test_an_unknown_part_changes_nothing() -> None:
    event = _event()
    assert remove_parts(event, [attribute_part(str(uuid.uuid4()))]) == event
