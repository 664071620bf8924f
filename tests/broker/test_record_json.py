"""JSON records in and out: ISO times, UUID strings, unknown fields refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from broker.errors import MalformedRecord
from broker.record_json import from_json, to_json
from tests.broker._pki import load_store


def test_json_record_round_trips_through_avro() -> None:
    store = load_store()
    obj = {
        "id": "2f4c1e8a-52c5-4d4b-9b35-8d1f2f0f9a11",
        "title": "Ransomware at a hospital",
        "reported": "2026-11-27T10:00:00Z",
        "detected": "2026-11-27T08:30:00.123+00:00",
        "severity": "HIGH",
        "category": "malicious-code",
        "reporter": {"name": "Zoë Ünal", "email": "z@example.org"},
        "affected_persons": [{"name": "Jan"}],
    }
    record = from_json(store, "IncidentReport", obj)
    assert record["reported"] == datetime(2026, 11, 27, 10, tzinfo=UTC)
    _, decoded = store.decode(store.encode("IncidentReport", record))
    out = to_json(decoded)
    assert out["id"] == obj["id"]
    assert out["reported"] == "2026-11-27T10:00:00Z"
    assert out["detected"] == "2026-11-27T08:30:00.123000Z"
    assert out["reporter"]["name"] == "Zoë Ünal"
    assert out["affected_persons"][0]["email"] is None
    json.dumps(out)  # JSON-ready


def test_bad_json_records_are_malformed() -> None:
    store = load_store()
    with pytest.raises(MalformedRecord, match="ISO 8601"):
        from_json(store, "IncidentReport", {"reported": "yesterday"})
    with pytest.raises(MalformedRecord, match="unknown fields"):
        from_json(store, "Receipt", {"colour": "red"})
    with pytest.raises(MalformedRecord):
        from_json(store, "Receipt", ["not", "an", "object"])
