"""MISP in: to_ids attributes become Indicators, events IncidentReports, nothing is lost."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import InputFormatError
from broker.schemas import SchemaStore
from connectors import tlp
from connectors.soc import NO_TLP, parse_misp
from tests.connectors.soc.conftest import SAMPLES
from tests.connectors.soc.test_stix import accounted

MISP_FILES = sorted((SAMPLES / "misp").glob("*.json"))
pytestmark = pytest.mark.skipif(not MISP_FILES, reason=f"shared samples missing in {SAMPLES}")


def _event_of(doc: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = doc.get("Event", doc)
    return event


def _input_ids(event: dict[str, Any]) -> Counter[str]:
    ids = [event["uuid"]] + [a["uuid"] for a in event.get("Attribute", [])]
    ids += [a["uuid"] for o in event.get("Object", []) for a in o.get("Attribute", [])]
    return Counter(ids)


@pytest.mark.parametrize("path", MISP_FILES, ids=lambda p: p.name)
def test_every_event_and_attribute_is_published_or_skipped_once(
    path: Path, store: SchemaStore
) -> None:
    event = _event_of(json.loads(path.read_text()))
    result = parse_misp(path.read_bytes(), default_tlp="AMBER")
    assert accounted(result) == _input_ids(event)
    for item in result.items:
        store.encode(item.payload_type, item.record)
    to_ids = {a["uuid"] for a in event.get("Attribute", []) if a.get("to_ids")}
    to_ids |= {
        a["uuid"] for o in event.get("Object", []) for a in o["Attribute"] if a.get("to_ids")
    }
    published = {i.source_id for i in result.items if i.payload_type == "Indicator"}
    assert published <= to_ids
    for skip in result.skipped:
        assert skip.source_id not in to_ids or "to_ids" not in skip.reason
    report = next(i for i in result.items if i.payload_type == "IncidentReport")
    assert report.record["indicator_ids"] == [
        i.record["id"] for i in result.items if i.payload_type == "Indicator"
    ]


def test_tlp_white_tag_means_clear_and_default_cannot_lower_it() -> None:
    data = (SAMPLES / "misp/xorist-ransomware.json").read_bytes()
    assert {i.tlp for i in parse_misp(data, default_tlp=None).items} == {"CLEAR"}
    assert {i.tlp for i in parse_misp(data, default_tlp="RED").items} == {"RED"}


def test_objects_attributes_are_indicators_with_hash_patterns() -> None:
    result = parse_misp((SAMPLES / "misp/samsam-objects.json").read_bytes(), default_tlp=None)
    rec = next(
        i.record for i in result.items if i.source_id == "a5274885-a3c6-40bc-92dd-258429767e47"
    )
    assert rec["observable_type"] == "file"
    assert rec["pattern"] == (
        "[file:hashes.'SHA-256' = "
        "'9b23bfc35b18ed80104c496b2aa722b3e56ff9ceb9dae60d1aff7230321c1d12']"
    )
    assert rec["name"] == "file/sha256"
    assert rec["id"] == rec["source_object_id"] == "a5274885-a3c6-40bc-92dd-258429767e47"


def test_ecsirt_tag_gives_enisa_category_and_no_tlp_refuses() -> None:
    result = parse_misp((SAMPLES / "misp/random-event.json").read_bytes(), default_tlp=None)
    assert result.items == ()
    event = next(s for s in result.skipped if s.source_type == "misp-event")
    assert event.reason == NO_TLP
    result = parse_misp((SAMPLES / "misp/random-event.json").read_bytes(), default_tlp="GREEN")
    (report,) = result.items
    assert report.categories == frozenset({"malicious-code"})
    assert report.record["category"] == "malicious-code"
    assert report.record["severity"] == "HIGH"  # threat_level_id 1


def test_links_are_carried_as_external_references_of_the_report() -> None:
    result = parse_misp((SAMPLES / "misp/xorist-ransomware.json").read_bytes(), default_tlp=None)
    report = next(i for i in result.items if i.payload_type == "IncidentReport")
    urls = [r["url"] for r in report.record["external_references"]]
    assert "http://www.xylibox.com/2011/06/have-fun-with-trojan-ransomwin32xorist.html" in urls
    carried = [s for s in result.skipped if "external reference" in s.reason]
    assert len(carried) == len(urls)


def _event(*attributes: Any, tags: list[str] | None = None) -> str:
    return json.dumps(
        {
            "Event": {
                "uuid": "5758ebf5-c898-48e6-9fe9-5665c0a83866",
                "info": "test",
                "threat_level_id": "2",
                "timestamp": "1700000000",
                "Tag": [{"name": t} for t in tags or []],
                "Attribute": list(attributes),
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


def test_bad_attributes_are_skipped_with_reasons_and_the_rest_published() -> None:
    result = parse_misp(
        _event(
            _attr(1, "ip-dst", "192.0.2.1"),
            _attr(2, "ip-dst", "not-an-ip"),
            _attr(3, "nonsense-type", "x"),
            _attr(4, "btc", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"),
            _attr(5, "domain", "example.org", deleted=True),
            "garbage",
        ),
        default_tlp="GREEN",
    )
    assert [i.source_id for i in result.items if i.payload_type == "Indicator"] == [
        "00000000-0000-4000-8000-000000000001"
    ]
    reasons = {s.source_id: s.reason for s in result.skipped}
    assert reasons["00000000-0000-4000-8000-000000000002"].startswith("bad ip-dst value")
    assert reasons["00000000-0000-4000-8000-000000000003"].startswith("invalid MISP attribute")
    assert "no STIX observable mapping" in reasons["00000000-0000-4000-8000-000000000004"]
    assert reasons["00000000-0000-4000-8000-000000000005"] == "deleted in MISP"
    assert reasons["5758ebf5-c898-48e6-9fe9-5665c0a83866/Attribute[5]"] == "not an attribute object"


def test_input_that_is_not_a_misp_event_is_refused() -> None:
    with pytest.raises(InputFormatError, match="not a MISP event"):
        parse_misp(json.dumps({"hello": "world"}), default_tlp="GREEN")
    with pytest.raises(InputFormatError, match="invalid JSON"):
        parse_misp('{"Event": {"info": "x", ', default_tlp="GREEN")


TAGS = st.sampled_from(
    [
        "tlp:white",
        "tlp:clear",
        "tlp:green",
        "tlp:amber",
        "tlp:amber+strict",
        "tlp:red",
        "ecsirt:fraud",
        "other",
    ]
)


@settings(max_examples=80, deadline=None)
@given(
    event_tags=st.lists(TAGS, max_size=3, unique=True),
    attr_tags=st.lists(TAGS, max_size=3, unique=True),
    default=st.one_of(st.none(), st.sampled_from(tlp.LEVELS)),
)
def test_strictest_of_attribute_event_and_default_tags_wins(
    event_tags: list[str], attr_tags: list[str], default: str | None
) -> None:
    attribute = _attr(1, "domain", "example.org", Tag=[{"name": t} for t in attr_tags])
    result = parse_misp(_event(attribute, tags=event_tags), default_tlp=default)
    levels = [tlp.from_misp_tag(t) for t in event_tags + attr_tags] + [default]
    expected = tlp.strictest(levels)
    published = {i.source_id: i.tlp for i in result.items}
    if expected is None:
        assert published == {}
    else:
        assert published[attribute["uuid"]] == expected
    assert len(result.items) + len(result.skipped) == 2


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
ATTRIBUTE_FIELDS = st.sampled_from(
    [
        "uuid",
        "type",
        "value",
        "to_ids",
        "timestamp",
        "first_seen",
        "Tag",
        "comment",
        "deleted",
        "category",
    ]
)
EVENT_FIELDS = st.sampled_from(
    ["uuid", "info", "threat_level_id", "timestamp", "publish_timestamp", "date", "Tag", "Object"]
)


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
    assert len(result.items) + len(result.skipped) >= 2
