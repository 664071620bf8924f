"""STIX out: STIX in -> records (via Avro) -> STIX out keeps ids, patterns and TLP; it validates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import stix2validator

from broker.errors import ConfigError
from broker.schemas import SchemaStore
from connectors._stix_object import object_of
from connectors.isac import Delivered, indicator_stix_id, to_stix_bundle
from connectors.soc import Item, parse_file
from tests.samples import sample_params

RECEIVED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def delivered(store: SchemaStore, item: Item, n: int, **flags: Any) -> Delivered:
    """What the subscriber would hand over: the record after an Avro round trip."""
    _, record = store.decode(store.encode(item.payload_type, item.record))
    return Delivered(
        item.payload_type,
        record,
        item.tlp,
        f"msg-{n}",
        "cert-eu",
        RECEIVED,
        categories=item.categories,
        **flags,
    )


def validate(bundle: dict[str, Any]) -> None:
    result = stix2validator.validate_instance(
        bundle, stix2validator.ValidationOptions(version="2.1")
    )
    assert result.is_valid, [str(e) for e in result.errors]
    assert not result.errors


@pytest.mark.parametrize("path", sample_params("stix/*.json", "misp/*.json"))
def test_every_sample_goes_out_as_valid_stix_whole(path: Path, store: SchemaStore) -> None:
    parsed = parse_file(path, default_tlp="GREEN")
    items = [delivered(store, item, n) for n, item in enumerate(parsed.items)]
    bundle = to_stix_bundle(items)
    validate(bundle)
    out = {o["id"]: o for o in bundle["objects"]}
    if parsed.format == "stix":  # the objects as they came in (2.0 ones upgraded)
        assert out == {i.source_id: object_of(i.record) for i in parsed.items}
    else:  # a MISP event, through MISP's own converter: its report (or grouping)
        (item,) = parsed.items
        assert {f"report--{item.source_id}", f"grouping--{item.source_id}"} & set(out)


def _indicator_item(store: SchemaStore, level: str = "AMBER+STRICT", **flags: Any) -> Delivered:
    record = {
        "id": "6b1f1f0e-3c1a-4c1e-9d5e-0a9f4a6b7c8d",
        "observable_type": "domain-name",
        "value": "bad.example",
        "pattern": None,
        "valid_from": RECEIVED,
        "labels": ["malicious-activity", "c2"],
    }
    item = Item("Indicator", record, level, frozenset(), "x")
    return delivered(store, item, 1, **flags)


def test_retracted_record_is_revoked_and_provenance_recorded(store: SchemaStore) -> None:
    bundle = to_stix_bundle([_indicator_item(store, retracted=True, redacted=True)])
    validate(bundle)
    indicator = next(o for o in bundle["objects"] if o["type"] == "indicator")
    assert indicator["revoked"] is True
    assert indicator["id"] == "indicator--6b1f1f0e-3c1a-4c1e-9d5e-0a9f4a6b7c8d"
    assert indicator["pattern"] == "[domain-name:value = 'bad.example']"  # built from the value
    assert indicator["indicator_types"] == ["malicious-activity"] and indicator["labels"] == ["c2"]
    (ref,) = indicator["external_references"]
    assert ref["external_id"] == "msg-1" and "redacted" in ref["description"]


def test_amber_strict_goes_out_as_the_tlp2_marking_definition(store: SchemaStore) -> None:
    bundle = to_stix_bundle([_indicator_item(store)])
    marking = next(o for o in bundle["objects"] if o["type"] == "marking-definition")
    assert marking["id"] == "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
    assert marking["name"] == "TLP:AMBER+STRICT"
    assert indicator_stix_id({"id": "6b1f1f0e-3c1a-4c1e-9d5e-0a9f4a6b7c8d"}) == (
        "indicator--6b1f1f0e-3c1a-4c1e-9d5e-0a9f4a6b7c8d"
    )


def test_report_without_indicators_refers_to_its_incident(store: SchemaStore) -> None:
    record = {
        "id": "0f0e0d0c-0b0a-4908-8706-050403020100",
        "title": "Ransomware at a hospital",
        "reported": RECEIVED,
        "severity": "HIGH",
        "category": "malicious-code",
    }
    item = delivered(store, Item("IncidentReport", record, "RED", frozenset(), "r"), 2)
    bundle = to_stix_bundle([item])
    validate(bundle)
    report = next(o for o in bundle["objects"] if o["type"] == "report")
    assert report["id"] == "report--0f0e0d0c-0b0a-4908-8706-050403020100"
    assert report["object_refs"] == ["incident--0f0e0d0c-0b0a-4908-8706-050403020100"]
    assert "severity:HIGH" in report["labels"]


def test_unsupported_payload_type_is_refused_clearly() -> None:
    item = Delivered("SituationReport", {}, "GREEN", "m", "enisa", RECEIVED)
    with pytest.raises(ConfigError, match="no STIX mapping for SituationReport"):
        to_stix_bundle([item])


def test_invalid_source_id_falls_back_to_record_id_and_bad_pattern_is_clear(
    store: SchemaStore,
) -> None:
    record = {
        "id": "6b1f1f0e-3c1a-4c1e-9d5e-0a9f4a6b7c8d",
        "source_object_id": "indicator--d81f86b9-975b-bc0b-775e-810c5ad45a4f",
    }
    assert indicator_stix_id(record) == "indicator--6b1f1f0e-3c1a-4c1e-9d5e-0a9f4a6b7c8d"
    bad = {
        "id": "6b1f1f0e-3c1a-4c1e-9d5e-0a9f4a6b7c8d",
        "observable_type": "url",
        "pattern": "[url:value = ",
        "valid_from": RECEIVED,
    }
    item = delivered(store, Item("Indicator", bad, "GREEN", frozenset(), "x"), 5)
    with pytest.raises(ConfigError, match=r"msg-5: Indicator cannot be written as STIX 2\.1"):
        to_stix_bundle([item])
