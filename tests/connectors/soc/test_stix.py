"""STIX in: every object accounted for, indicators and reports mapped, strictest TLP wins."""

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
from connectors.soc import NO_TLP, ParseResult, parse_stix
from tests.connectors.soc.conftest import SAMPLES

STIX_FILES = sorted((SAMPLES / "stix").glob("*.json"))
pytestmark = pytest.mark.skipif(not STIX_FILES, reason=f"shared samples missing in {SAMPLES}")


def _ids(objects: list[dict[str, Any]]) -> Counter[str]:
    return Counter(o["id"] for o in objects)


def accounted(result: ParseResult) -> Counter[str]:
    return Counter([i.source_id for i in result.items] + [s.source_id for s in result.skipped])


@pytest.mark.parametrize("path", STIX_FILES, ids=lambda p: p.name)
def test_every_sample_object_is_published_or_skipped_once(path: Path, store: SchemaStore) -> None:
    bundle = json.loads(path.read_text())
    result = parse_stix(path.read_bytes(), default_tlp="GREEN")
    assert accounted(result) == _ids(bundle["objects"])
    for item in result.items:
        name, decoded = store.decode(store.encode(item.payload_type, item.record))
        assert name == f"eu.jcu.v1.{item.payload_type}"
        assert str(decoded["id"]) == item.record["id"]
    indicators = {o["id"] for o in bundle["objects"] if o["type"] == "indicator"}
    published = {i.source_id for i in result.items if i.payload_type == "Indicator"}
    for skip in result.skipped:
        assert skip.reason
        if skip.source_id in indicators:
            assert skip.reason.startswith("invalid STIX indicator")
    assert published <= indicators


def test_indicator_fields_and_simple_pattern_observable() -> None:
    result = parse_stix(
        (SAMPLES / "stix/indicator-for-c2-ip-address.json").read_bytes(), default_tlp="AMBER"
    )
    (item,) = result.items
    rec = item.record
    assert item.payload_type == "Indicator"
    assert (
        item.source_id
        == rec["source_object_id"]
        == "indicator--33fe3b22-0201-47cf-85d0-97c02164528d"
    )
    assert rec["id"] == "33fe3b22-0201-47cf-85d0-97c02164528d"
    assert (rec["observable_type"], rec["value"]) == ("ipv4-addr", "10.0.0.0")
    assert rec["pattern"] == "[ipv4-addr:value = '10.0.0.0']"
    assert rec["labels"] == ["malicious-activity"]
    assert rec["valid_from"].isoformat() == "2014-05-08T09:00:00+00:00"
    assert item.tlp == "AMBER"


def test_file_hash_pattern_gives_file_observable() -> None:
    result = parse_stix(
        (SAMPLES / "stix/indicators-for-C2-with-COA.json").read_bytes(), default_tlp="GREEN"
    )
    by_id = {i.source_id: i.record for i in result.items}
    rec = by_id["indicator--a932fcc6-e032-476c-826f-cb970a5a1ade"]
    assert rec["observable_type"] == "file"
    assert rec["value"] == "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c"


def test_compound_pattern_keeps_pattern_and_lists_types_without_value() -> None:
    result = parse_stix((SAMPLES / "stix/poisonivy.json").read_bytes(), default_tlp="GREEN")
    rec = next(
        i.record
        for i in result.items
        if i.source_id == "indicator--329ae6e9-25bd-49e8-89d1-aae4ca52e4a7"
    )
    assert rec["value"] is None
    assert rec["observable_type"] == "domain-name,ipv4-addr"
    assert rec["pattern"].startswith("[domain-name:value = 'www.webserver.dynssl.com' OR")


def test_report_becomes_incident_report_with_its_indicator_ids() -> None:
    data = json.loads((SAMPLES / "stix/poisonivy.json").read_text())
    report = next(o for o in data["objects"] if o["type"] == "report")
    result = parse_stix(json.dumps(data), default_tlp="GREEN")
    item = next(i for i in result.items if i.payload_type == "IncidentReport")
    assert item.source_id == report["id"]
    expected = [r.split("--")[1] for r in report["object_refs"] if r.startswith("indicator--")]
    assert item.record["indicator_ids"] == expected and len(expected) == 25
    assert item.record["title"] == report["name"]
    assert item.record["severity"] == "MEDIUM"


def test_other_object_types_are_skipped_with_their_type_named() -> None:
    result = parse_stix((SAMPLES / "stix/infrastructure.json").read_bytes(), default_tlp="GREEN")
    assert result.items == ()
    reasons = {s.source_type: s.reason for s in result.skipped}
    assert reasons["malware"] == "not shared as its own record: malware"
    assert reasons["ipv4-addr"] == "not shared as its own record: ipv4-addr"
    assert reasons["relationship"] == "not shared as its own record: relationship"


def test_stix20_bundle_is_upgraded_and_its_tlp_marking_applied() -> None:
    result = parse_stix(
        (SAMPLES / "stix/using-marking-definitions.json").read_bytes(), default_tlp=None
    )
    assert result.notes == ("upgraded from STIX 2.0 to 2.1",)
    (item,) = result.items
    assert item.tlp == "AMBER"  # from the bundled TLP marking-definition, no default needed
    assert item.record["labels"] == ["malicious-activity"]  # 2.0 labels -> indicator_types
    assert {s.source_type for s in result.skipped} == {"marking-definition", "identity"}


def test_unsupported_stix_version_is_refused_clearly() -> None:
    bundle: dict[str, Any] = {
        "type": "bundle",
        "id": "bundle--1",
        "spec_version": "1.2",
        "objects": [],
    }
    with pytest.raises(InputFormatError, match=r"spec_version '1.2' is not supported"):
        parse_stix(json.dumps(bundle), default_tlp="GREEN")


def test_truncated_json_is_refused_with_its_position() -> None:
    data = (SAMPLES / "stix/poisonivy.json").read_bytes()[:5000]
    with pytest.raises(InputFormatError, match=r"invalid JSON at line \d+ column \d+.*truncated"):
        parse_stix(data, default_tlp="GREEN")


def test_a_json_document_that_is_not_a_bundle_is_refused() -> None:
    with pytest.raises(InputFormatError, match="not a STIX bundle"):
        parse_stix(json.dumps({"type": "indicator", "id": "indicator--x"}), default_tlp="GREEN")


def _indicator(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "pattern": f"[domain-name:value = 'host{n}.example']",
        "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
        **extra,
    }


def test_unknown_type_and_bad_objects_are_skipped_and_the_rest_published() -> None:
    bundle: dict[str, Any] = {
        "type": "bundle",
        "id": "bundle--00000000-0000-4000-8000-000000000000",
        "objects": [
            _indicator(1),
            {"type": "frobnicator", "id": "frobnicator--1", "spec_version": "2.1"},
            {"type": "x-acme-thing", "id": "x-acme-thing--1", "spec_version": "2.1"},
            _indicator(2, pattern="[domain-name:value = "),  # broken pattern
            _indicator(3, valid_from="yesterday"),
            "not an object",
        ],
    }
    result = parse_stix(json.dumps(bundle), default_tlp="GREEN")
    assert [i.source_id for i in result.items] == [bundle["objects"][0]["id"]]
    reasons = {s.source_id: s.reason for s in result.skipped}
    assert reasons["frobnicator--1"] == "unknown STIX object type 'frobnicator'"
    assert reasons["x-acme-thing--1"] == "not shared as its own record: x-acme-thing"
    assert reasons[_indicator(2)["id"]].startswith("invalid STIX indicator")
    assert reasons[_indicator(3)["id"]].startswith("invalid STIX indicator")
    assert reasons["objects[5]"] == "not a STIX object (no type)"


def test_without_marking_or_default_the_object_is_refused_not_guessed() -> None:
    bundle: dict[str, Any] = {"type": "bundle", "id": "bundle--1", "objects": [_indicator(1)]}
    result = parse_stix(json.dumps(bundle), default_tlp=None)
    assert result.items == ()
    assert result.skipped[0].reason == NO_TLP


MARKINGS = st.sampled_from(
    [
        *tlp.STIX_TLP1_IDS,
        *tlp.STIX_TLP2_IDS,
        "bundled-tlp",
        "bundled-tlp2",
        "statement",
    ]
)
BUNDLED = {
    "bundled-tlp": {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--11111111-1111-4111-8111-111111111111",
        "created": "2026-01-01T00:00:00Z",
        "definition_type": "tlp",
        "definition": {"tlp": "red"},
    },
    "bundled-tlp2": {
        **tlp.stix_marking_definition("AMBER+STRICT"),
        "id": "marking-definition--22222222-2222-4222-8222-222222222222",
    },
    "statement": {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--33333333-3333-4333-8333-333333333333",
        "created": "2026-01-01T00:00:00Z",
        "definition_type": "statement",
        "definition": {"statement": "Copyright"},
    },
}
LEVEL_OF_BUNDLED = {"bundled-tlp": "RED", "bundled-tlp2": "AMBER+STRICT", "statement": None}


@settings(max_examples=80, deadline=None)
@given(
    own=st.lists(MARKINGS, max_size=3, unique=True),
    report=st.lists(MARKINGS, max_size=2, unique=True),
    default=st.one_of(st.none(), st.sampled_from(tlp.LEVELS)),
)
def test_strictest_of_object_report_and_default_markings_wins(
    own: list[str], report: list[str], default: str | None
) -> None:
    def ref(m: str) -> str:
        return str(BUNDLED[m]["id"]) if m in BUNDLED else m

    def level(m: str) -> str | None:
        if m in BUNDLED:
            return LEVEL_OF_BUNDLED[m]
        return tlp.STIX_TLP1_IDS.get(m) or tlp.STIX_TLP2_IDS.get(m)

    ind = _indicator(7, object_marking_refs=[ref(m) for m in own]) if own else _indicator(7)
    rep = {
        "type": "report",
        "spec_version": "2.1",
        "id": "report--00000000-0000-4000-8000-000000000009",
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "name": "r",
        "published": "2026-01-01T00:00:00Z",
        "object_refs": [ind["id"]],
    }
    if report:
        rep["object_marking_refs"] = [ref(m) for m in report]
    bundle: dict[str, Any] = {
        "type": "bundle",
        "id": "bundle--1",
        "objects": [*BUNDLED.values(), ind, rep],
    }
    result = parse_stix(json.dumps(bundle), default_tlp=default)
    candidates = [level(m) for m in own + report] + [default]
    expected = tlp.strictest(candidates)
    published = {i.source_id: i.tlp for i in result.items}
    if expected is None:
        assert ind["id"] not in published
    else:
        assert published[ind["id"]] == expected
    assert accounted(result) == Counter(o["id"] for o in bundle["objects"])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        "id",
        "pattern",
        "pattern_type",
        "valid_from",
        "name",
        "object_marking_refs",
        "kill_chain_phases",
        "external_references",
        "labels",
        "confidence",
        "spec_version",
        "object_refs",
        "published",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(["indicator", "report"]),
    changes=st.dictionaries(FIELDS, JSON_VALUES, max_size=3),
)
def test_mangled_objects_are_skipped_never_crash(kind: str, changes: dict[str, Any]) -> None:
    base: dict[str, Any] = _indicator(1)
    if kind == "report":
        base = {
            "type": "report",
            "spec_version": "2.1",
            "id": "report--" + base["id"][11:],
            "created": base["created"],
            "modified": base["modified"],
            "name": "r",
            "published": "2026-01-01T00:00:00Z",
            "object_refs": [base["id"]],
        }
    obj = {**base, **changes}
    result = parse_stix(
        json.dumps({"type": "bundle", "id": "bundle--1", "objects": [obj]}), default_tlp="GREEN"
    )
    assert len(result.items) + len(result.skipped) == 1
