"""MISP out: PyMISP loads the event; attribute uuids are record ids; TLP, retraction tagged."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pymisp import MISPEvent

from broker.errors import ConfigError
from broker.schemas import SchemaStore
from connectors._convert import stix_to_misp
from connectors._misp_event import all_attributes
from connectors._stix_object import object_of
from connectors.isac import Delivered, to_misp_event
from connectors.isac._misp import misp_event_of
from connectors.soc import Item, parse_file
from tests.connectors.isac.test_stix_out import RECEIVED, delivered
from tests.samples import sample_params


@pytest.mark.parametrize("path", sample_params("misp/*.json"))
def test_a_misp_event_goes_out_whole_with_the_sender_as_creator(
    path: Path, store: SchemaStore
) -> None:
    parsed = parse_file(path, default_tlp="AMBER")
    (item,) = [delivered(store, i, n) for n, i in enumerate(parsed.items)]
    doc = misp_event_of(item)
    event = MISPEvent()
    event.load(json.dumps(doc))  # PyMISP reads it
    source = json.loads(path.read_text())
    source = source.get("Event", source)
    assert event.uuid == source["uuid"]
    assert event.Orgc.name == "cert-eu"
    sent = {(a["uuid"], a["type"], a["value"]) for a in all_attributes(source)}
    got = {(a.uuid, a.type, a.value) for a in [*event.attributes, *(
        a for o in event.objects for a in o.attributes)]}  # fmt: skip
    assert got == sent  # every attribute, composite values and hash types as they were
    assert [t.name for t in event.tags] == [t["name"] for t in source.get("Tag", [])]


@pytest.mark.parametrize("path", sample_params("stix/*.json"))
def test_a_stix_bundle_becomes_one_misp_event(path: Path, store: SchemaStore) -> None:
    parsed = parse_file(path, default_tlp="GREEN")
    objects = [object_of(delivered(store, i, n).record) for n, i in enumerate(parsed.items)]
    event_uuid = str(uuid.uuid4())
    doc = {"Event": stix_to_misp(objects, event_uuid=event_uuid)}
    event = MISPEvent()
    event.load(json.dumps(doc))
    assert event.uuid == event_uuid
    assert len(event.attributes) + len(event.objects) + len(event.galaxies) > 0


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
