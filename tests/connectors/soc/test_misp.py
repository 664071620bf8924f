"""MISP in: one whole MispEvent per event; MISP's own TLP and distribution kept per attribute."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import InputFormatError
from broker.pep import Part
from broker.schemas import SchemaStore
from connectors import tlp
from connectors._misp_event import event_of
from connectors.soc import NO_TLP, parse_misp
from tests.samples import SAMPLES, needs_public, sample_params

EVENT_UUID = "5758ebf5-c898-48e6-9fe9-5665c0a83866"


def _event(*attributes: Any, tags: list[str] | None = None, **extra: Any) -> str:
    return json.dumps(
        {
            "Event": {
                "uuid": EVENT_UUID,
                "info": "test",
                "threat_level_id": "2",
                "timestamp": "1700000000",
                "Tag": [{"name": t} for t in tags or []],
                "Attribute": list(attributes),
                **extra,
            }
        }
    )


def _attr(n: int, type_: str, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "uuid": f"00000000-0000-4000-8000-{n:012d}",
        "type": type_,
        "value": value,
        "to_ids": True,
        "timestamp": "1700000000",
        "category": "Network activity",
        **extra,
    }


@pytest.mark.parametrize("path", sample_params("misp/*.json"))
def test_every_sample_event_travels_whole(path: Path, store: SchemaStore) -> None:
    doc = json.loads(path.read_text())
    source = doc.get("Event", doc)
    result = parse_misp(path.read_bytes(), default_tlp="AMBER")
    assert result.skipped == ()
    (item,) = result.items
    assert item.payload_type == "MispEvent" and item.source_id == source["uuid"]
    name, decoded = store.decode(store.encode("MispEvent", item.record))
    assert name == "eu.jcu.v1.MispEvent"
    assert event_of(decoded) == source  # every member, as exported
    assert decoded["attribute_count"] == len(source.get("Attribute", [])) + sum(
        len(o.get("Attribute", [])) for o in source.get("Object", [])
    )
    assert item.version == str(source["timestamp"])


@needs_public
def test_tlp_white_tag_means_clear_and_default_cannot_lower_it() -> None:
    data = (SAMPLES / "misp/xorist-ransomware.json").read_bytes()
    assert parse_misp(data, default_tlp=None).items[0].tlp == "CLEAR"
    assert parse_misp(data, default_tlp="AMBER").items[0].tlp == "AMBER"


@needs_public
def test_ecsirt_tag_gives_enisa_category_and_no_tlp_refuses() -> None:
    data = (SAMPLES / "misp/random-event.json").read_bytes()
    (item,) = parse_misp(data, default_tlp="GREEN").items
    assert item.categories == {"malicious-code"}
    result = parse_misp(data, default_tlp=None)
    assert result.items == ()
    assert [s.reason for s in result.skipped] == [NO_TLP]


def test_composite_values_and_comments_stay_as_written() -> None:
    attrs = [
        _attr(1, "ip-dst|port", "203.0.113.5|8443", comment="C2\nsecond line"),
        _attr(2, "ip-dst|port", "203.0.113.5|443"),
        _attr(3, "domain|ip", "c2.example.net|203.0.113.5"),
        _attr(4, "filename|sha256", "a.exe|" + "ab" * 32),
        _attr(5, "btc", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", category="Financial fraud"),
    ]
    (item,) = parse_misp(_event(*attrs), default_tlp="GREEN").items
    assert event_of(item.record)["Attribute"] == attrs


def test_stricter_attribute_tlp_is_a_part_and_distribution_narrows() -> None:
    attrs = [
        _attr(1, "ip-dst", "192.0.2.1"),
        _attr(2, "ip-dst", "192.0.2.2", Tag=[{"name": "tlp:red"}]),
        _attr(3, "ip-dst", "192.0.2.3", Tag=[{"name": "tlp:clear"}]),  # not stricter
        _attr(4, "comment", "internal", distribution="0"),
        _attr(5, "comment", "our community", distribution="1"),
        _attr(6, "comment", "a group", distribution="4", sharing_group_id="7"),
    ]
    result = parse_misp(_event(*attrs, tags=["tlp:green"], distribution="3"), default_tlp=None)
    (item,) = result.items
    assert item.parts == (Part("Attribute/00000000-0000-4000-8000-000000000002", "RED"),)
    assert item.community_parts == ("Attribute/00000000-0000-4000-8000-000000000005",)
    reasons = {s.source_id: s.reason for s in result.skipped}
    assert reasons == {
        "00000000-0000-4000-8000-000000000004": (
            "MISP distribution 'your organisation only': not shared"
        ),
        "00000000-0000-4000-8000-000000000006": (
            "MISP distribution to a sharing group of its own: not shared (no mapping)"
        ),
    }
    kept = [a["uuid"][-1] for a in event_of(item.record)["Attribute"]]
    assert kept == ["1", "2", "3", "5"]


def test_bad_attributes_are_left_out_with_reasons_and_the_rest_travels() -> None:
    result = parse_misp(
        _event(
            _attr(1, "ip-dst", "192.0.2.1"),
            _attr(2, "ip-dst", "not-an-ip"),
            _attr(3, "nonsense-type", "x"),
            _attr(4, "domain", "example.org", deleted=True),
            "garbage",
        ),
        default_tlp="GREEN",
    )
    (item,) = result.items
    assert [a["uuid"][-1] for a in event_of(item.record)["Attribute"]] == ["1"]
    reasons = {s.source_id: s.reason for s in result.skipped}
    assert reasons["00000000-0000-4000-8000-000000000002"].startswith("bad ip-dst value")
    assert reasons["00000000-0000-4000-8000-000000000003"].startswith("invalid MISP attribute")
    assert reasons["00000000-0000-4000-8000-000000000004"] == "deleted in MISP"
    assert reasons[f"{EVENT_UUID}/Attribute[4]"] == "not an attribute object"


def test_input_that_is_not_a_misp_event_is_refused() -> None:
    with pytest.raises(InputFormatError, match="not a MISP event"):
        parse_misp(json.dumps({"hello": "world"}), default_tlp="GREEN")
    with pytest.raises(InputFormatError, match="invalid JSON"):
        parse_misp('{"Event": {"info": "x", ', default_tlp="GREEN")


TAGS = st.sampled_from(
    ["tlp:white", "tlp:clear", "tlp:green", "tlp:amber", "tlp:amber+strict", "tlp:red", "other"]
)


@settings(max_examples=80, deadline=None)
@given(
    event_tags=st.lists(TAGS, max_size=3, unique=True),
    attr_tags=st.lists(TAGS, max_size=3, unique=True),
    default=st.one_of(st.none(), st.sampled_from(tlp.LEVELS)),
)
def test_the_event_takes_its_own_tlp_and_a_stricter_attribute_is_a_part(
    event_tags: list[str], attr_tags: list[str], default: str | None
) -> None:
    attribute = _attr(1, "domain", "example.org", Tag=[{"name": t} for t in attr_tags])
    result = parse_misp(_event(attribute, tags=event_tags), default_tlp=default)
    level = tlp.strictest([*(tlp.from_misp_tag(t) for t in event_tags), default])
    if level is None:
        assert result.items == ()
        assert [s.reason for s in result.skipped] == [NO_TLP]
        return
    (item,) = result.items
    assert item.tlp == level
    own = tlp.strictest(tlp.from_misp_tag(t) for t in attr_tags)
    if own is not None and tlp.rank(own) > tlp.rank(level):
        assert item.parts == (Part(f"Attribute/{attribute['uuid']}", own),)
    else:
        assert item.parts == ()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
ATTRIBUTE_FIELDS = st.sampled_from(
    ["uuid", "type", "value", "to_ids", "timestamp", "first_seen", "Tag", "comment",
     "deleted", "category", "distribution", "Galaxy", "Sighting"]
)  # fmt: skip
EVENT_FIELDS = st.sampled_from(
    ["uuid", "info", "threat_level_id", "timestamp", "publish_timestamp", "date", "Tag",
     "Object", "Galaxy", "Sighting", "distribution", "Orgc"]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    attribute_changes=st.dictionaries(ATTRIBUTE_FIELDS, JSON_VALUES, max_size=3),
    event_changes=st.dictionaries(EVENT_FIELDS, JSON_VALUES, max_size=2),
)
def test_mangled_events_and_attributes_never_crash(
    attribute_changes: dict[str, Any], event_changes: dict[str, Any]
) -> None:
    doc = json.loads(_event({**_attr(1, "domain", "example.org"), **attribute_changes}))
    doc["Event"].update(event_changes)
    try:
        result = parse_misp(json.dumps(doc), default_tlp="GREEN")
    except InputFormatError:
        return  # a clear file-level refusal is allowed; a crash is not
    assert len(result.items) + len(result.skipped) >= 1
    assert len(result.items) <= 1
