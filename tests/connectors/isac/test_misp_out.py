"""MISP out: PyMISP loads the event; attribute uuids are record ids; TLP, retraction tagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pymisp import MISPEvent

from broker.errors import ConfigError
from broker.schemas import SchemaStore
from connectors import tlp
from connectors.isac import Delivered, to_misp_event
from connectors.soc import Item, parse_file
from tests.connectors.isac.conftest import SAMPLES
from tests.connectors.isac.test_stix_out import RECEIVED, delivered

SAMPLE_FILES = sorted(SAMPLES.glob("*/*.json"))
pytestmark = pytest.mark.skipif(not SAMPLE_FILES, reason=f"shared samples missing in {SAMPLES}")


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_pymisp_loads_the_event_and_keeps_uuids_and_tlp(path: Path, store: SchemaStore) -> None:
    parsed = parse_file(path, default_tlp="AMBER")
    items = [delivered(store, item, n) for n, item in enumerate(parsed.items)]
    if not items:
        pytest.skip(f"{path.name} has nothing to publish")
    doc = to_misp_event(items, f"from {path.name}")
    event = MISPEvent()
    event.load(json.dumps(doc))
    again = MISPEvent()
    again.from_dict(**doc["Event"])
    assert again.uuid == event.uuid
    attributes = {a.uuid: a for a in event.attributes}
    indicators = [i for i in parsed.items if i.payload_type == "Indicator"]
    assert set(attributes) == {i.record["id"] for i in indicators}
    for item in indicators:
        attribute = attributes[item.record["id"]]
        assert attribute.to_ids is True
        assert tlp.misp_tag(item.tlp) in {t.name for t in attribute.tags}
        if item.record["value"] is not None and item.record["observable_type"] != "file":
            assert attribute.value == item.record["value"]
    strictest = tlp.strictest(i.tlp for i in items)
    assert strictest is not None
    assert [t.name for t in event.tags] == [tlp.misp_tag(strictest)]
    reports = [i for i in parsed.items if i.payload_type == "IncidentReport"]
    assert {r.uuid for r in event.event_reports} == {r.record["id"] for r in reports}


def test_misp_in_misp_out_keeps_hash_types(store: SchemaStore) -> None:
    parsed = parse_file(SAMPLES / "misp/samsam-objects.json", default_tlp=None)
    items = [delivered(store, item, n) for n, item in enumerate(parsed.items)]
    event = MISPEvent()
    event.load(json.dumps(to_misp_event(items, "samsam")))
    by_uuid = {a.uuid: a for a in event.attributes}
    sha256 = by_uuid["a5274885-a3c6-40bc-92dd-258429767e47"]
    assert (sha256.type, sha256.value) == (
        "sha256",
        "9b23bfc35b18ed80104c496b2aa722b3e56ff9ceb9dae60d1aff7230321c1d12",
    )


def test_retracted_indicator_is_not_for_ids_and_tagged(store: SchemaStore) -> None:
    record = {
        "id": "6b1f1f0e-3c1a-4c1e-9d5e-0a9f4a6b7c8d",
        "observable_type": "ipv4-addr",
        "value": "192.0.2.7",
        "pattern": "[ipv4-addr:value = '192.0.2.7']",
        "valid_from": RECEIVED,
    }
    item = delivered(
        store, Item("Indicator", record, "RED", frozenset({"fraud"}), "x"), 3, retracted=True
    )
    event = MISPEvent()
    event.load(json.dumps(to_misp_event([item], "retraction")))
    (attribute,) = event.attributes
    assert attribute.to_ids is False
    assert {t.name for t in attribute.tags} == {"tlp:red", "ecsirt:fraud", "jcu:retracted"}
    assert (attribute.type, attribute.value) == ("ip-dst", "192.0.2.7")


def test_compound_pattern_goes_out_as_stix2_pattern_attribute(store: SchemaStore) -> None:
    pattern = "[domain-name:value = 'a.example' OR ipv4-addr:value = '192.0.2.1']"
    record = {
        "id": "6b1f1f0e-3c1a-4c1e-9d5e-0a9f4a6b7c8e",
        "observable_type": "domain-name",
        "pattern": pattern,
        "valid_from": RECEIVED,
    }
    item = delivered(store, Item("Indicator", record, "GREEN", frozenset(), "x"), 4)
    (attribute,) = to_misp_event([item], "compound")["Event"]["Attribute"]
    assert (attribute["type"], attribute["value"]) == ("stix2-pattern", pattern)


def test_empty_or_unsupported_input_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one record"):
        to_misp_event([], "nothing")
    item = Delivered("AssistanceRequest", {}, "GREEN", "m", "enisa", RECEIVED)
    with pytest.raises(ConfigError, match="no MISP mapping for AssistanceRequest"):
        to_misp_event([item], "x")
