"""STIX in: every object travels whole, each accounted for; markings decide its TLP and parts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import InputFormatError
from broker.pep import Part
from broker.schemas import SchemaStore
from connectors import tlp
from connectors._stix_object import object_of
from connectors.soc import NO_TLP, ParseResult, parse_stix
from connectors.soc.result import Ref
from tests.samples import SAMPLES, example_files, needs_public, public_files, sample_params

RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"


def accounted(result: ParseResult) -> Counter[str]:
    return Counter([i.source_id for i in result.items] + [s.source_id for s in result.skipped])


def bundle(*objects: Any, **extra: Any) -> str:
    return json.dumps(
        {"type": "bundle", "id": "bundle--00000000-0000-4000-8000-0000000000bb", "objects": objects}
        | extra
    )


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


def _sdo(kind: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "spec_version": "2.1",
        "id": f"{kind}--00000000-0000-4000-8000-{n:012d}",
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        **extra,
    }


@pytest.mark.parametrize("path", sample_params("stix/*.json"))
def test_every_sample_object_travels_or_is_skipped_once(path: Path, store: SchemaStore) -> None:
    source = json.loads(path.read_text())
    result = parse_stix(path.read_bytes(), default_tlp="GREEN")
    assert accounted(result) == Counter(o["id"] for o in source["objects"])
    by_id = {o["id"]: o for o in source["objects"]}
    for item in result.items:
        assert item.payload_type == "StixObject"
        name, decoded = store.decode(store.encode("StixObject", item.record))
        assert name == "eu.jcu.v1.StixObject"
        assert decoded["id"] == item.source_id and decoded["type"] == item.kind
        if by_id[item.source_id].get("spec_version") == "2.1":
            assert object_of(decoded) == by_id[item.source_id]  # nothing changed, nothing lost
    for skip in result.skipped:
        assert skip.reason


@needs_public
def test_every_type_of_a_threat_report_travels() -> None:
    result = parse_stix((SAMPLES / "stix/poisonivy.json").read_bytes(), default_tlp="GREEN")
    assert result.skipped == ()
    kinds = Counter(i.kind for i in result.items)
    assert kinds["indicator"] == 25
    assert {"malware", "campaign", "attack-pattern", "relationship", "report"} <= set(kinds)


@needs_public
def test_a_stix20_bundle_is_upgraded_completely() -> None:
    result = parse_stix(
        (SAMPLES / "stix/using-marking-definitions.json").read_bytes(), default_tlp=None
    )
    assert result.notes == ("upgraded from STIX 2.0 to 2.1 (4 objects)",)
    objects = {i.kind: object_of(i.record) for i in result.items}
    assert objects["indicator"]["indicator_types"] == ["malicious-activity"]
    assert "labels" not in objects["indicator"]
    assert objects["indicator"]["pattern_type"] == "stix"
    assert all(o["spec_version"] == "2.1" for o in objects.values())
    tlp_amber = next(object_of(i.record) for i in result.items if i.source_id in tlp.STIX_TLP1_IDS)
    assert tlp_amber["name"] == "TLP:AMBER"  # the STIX 2.1 form of the TLP 1.0 definition
    (indicator,) = [i for i in result.items if i.kind == "indicator"]
    assert indicator.tlp == "AMBER"


def test_stix20_granular_selectors_follow_the_renamed_property() -> None:
    old = {
        "type": "indicator",
        "id": "indicator--00000000-0000-4000-8000-000000000001",
        "created": "2017-01-01T00:00:00.000Z",
        "modified": "2017-01-01T00:00:00.000Z",
        "labels": ["malicious-activity", "compromised"],
        "pattern": "[ipv4-addr:value = '192.0.2.1']",
        "valid_from": "2017-01-01T00:00:00Z",
        "object_marking_refs": [GREEN],
        "granular_markings": [{"marking_ref": RED, "selectors": ["labels.[1]"]}],
    }
    result = parse_stix(bundle(old, spec_version="2.0"), default_tlp=None)
    (item,) = result.items
    obj = object_of(item.record)
    assert obj["indicator_types"] == ["malicious-activity", "compromised"]
    assert obj["granular_markings"] == [{"marking_ref": RED, "selectors": ["indicator_types.[1]"]}]
    assert item.tlp == "GREEN"
    assert item.parts == (Part("indicator_types.[1]", "RED"),)


def test_a_stix20_object_without_an_rfc4122_id_is_refused_in_one_line() -> None:
    old = {
        **_indicator(1, labels=["malicious-activity"]),
        "id": "indicator--a932fcc6-e032-176c-126f-cb970a5a1ade",
    }
    del old["spec_version"], old["pattern_type"]
    result = parse_stix(bundle(old, spec_version="2.0"), default_tlp="GREEN")
    ((skip),) = result.skipped
    assert skip.reason.startswith("STIX 2.0 object not upgraded: ")
    assert "RFC 4122" in skip.reason and "\n" not in skip.reason


def test_unsupported_stix_version_is_refused_clearly() -> None:
    with pytest.raises(InputFormatError, match=r"spec_version '1.2' is not supported"):
        parse_stix(bundle(spec_version="1.2"), default_tlp="GREEN")


def test_truncated_json_is_refused_with_its_position() -> None:
    data = bundle(*(_indicator(n) for n in range(20)))[:3000]
    with pytest.raises(InputFormatError, match=r"invalid JSON at line \d+ column \d+.*truncated"):
        parse_stix(data, default_tlp="GREEN")


def test_a_json_document_that_is_not_a_bundle_is_refused() -> None:
    with pytest.raises(InputFormatError, match="not a STIX bundle"):
        parse_stix(json.dumps({"type": "indicator", "id": "indicator--x"}), default_tlp="GREEN")


def test_custom_objects_travel_unknown_types_and_bad_objects_are_skipped() -> None:
    custom = _sdo("x-acme-thing", 5, x_acme_score=7)
    declared = _sdo(
        "acme-widget",
        6,
        extensions={
            "extension-definition--00000000-0000-4000-8000-000000000007": {
                "extension_type": "new-sdo"
            }
        },
    )
    objects = [
        _indicator(1),
        {"type": "frobnicator", "id": "frobnicator--1", "spec_version": "2.1"},
        custom,
        declared,
        _indicator(2, pattern="[domain-name:value = "),  # broken pattern
        _indicator(3, valid_from="yesterday"),
        "not an object",
    ]
    result = parse_stix(bundle(*objects), default_tlp="GREEN")
    assert [i.source_id for i in result.items] == [
        objects[0]["id"],  # type: ignore[index]
        custom["id"],
        declared["id"],
    ]
    assert object_of(result.items[1].record) == custom
    reasons = {s.source_id: s.reason for s in result.skipped}
    assert reasons["frobnicator--1"].startswith("unknown STIX object type 'frobnicator'")
    assert reasons[_indicator(2)["id"]].startswith("invalid STIX indicator")
    assert reasons[_indicator(3)["id"]].startswith("invalid STIX indicator")
    assert reasons["objects[6]"] == "not a STIX object (no type)"


def test_without_marking_or_default_the_object_is_refused_not_guessed() -> None:
    result = parse_stix(bundle(_indicator(1)), default_tlp=None)
    assert result.items == ()
    assert result.skipped[0].reason == NO_TLP


def test_stricter_granular_markings_become_parts_and_required_ones_the_whole() -> None:
    ind = _indicator(
        1,
        name="C2",
        description="seen at a victim",
        object_marking_refs=[GREEN],
        granular_markings=[
            {"marking_ref": RED, "selectors": ["description"]},
            {"marking_ref": AMBER, "selectors": ["name", "description"]},
            {"marking_ref": GREEN, "selectors": ["valid_from"]},  # not stricter: nothing to do
        ],
    )
    (item,) = parse_stix(bundle(ind), default_tlp=None).items
    assert item.tlp == "GREEN"
    assert item.parts == (Part("description", "RED"), Part("name", "AMBER"))

    marked = _indicator(2, object_marking_refs=[GREEN], granular_markings=[
        {"marking_ref": AMBER, "selectors": ["pattern"]}
    ])  # fmt: skip
    result = parse_stix(bundle(marked), default_tlp=None)
    (item,) = result.items
    assert (item.tlp, item.parts) == ("AMBER", ())
    assert "cannot go without" in result.notes[0]


def test_references_are_classified_for_the_graph_check() -> None:
    ident = _sdo("identity", 9, name="ACME", identity_class="organization")
    mal = _sdo("malware", 1, name="m", is_family=True, created_by_ref=ident["id"])
    rel = _sdo(
        "relationship", 2, relationship_type="indicates", source_ref=_indicator(3)["id"],
        target_ref=mal["id"], object_marking_refs=[GREEN],
    )  # fmt: skip
    rep = _sdo(
        "report", 4, name="r", published="2026-01-01T00:00:00Z",
        object_refs=[mal["id"], rel["id"]], object_marking_refs=[GREEN],
    )  # fmt: skip
    items = {i.kind: i for i in parse_stix(bundle(ident, mal, rel, rep), default_tlp="GREEN").items}
    assert items["malware"].refs == (Ref("created_by_ref", ident["id"], "trim"),)
    assert set(items["relationship"].refs) == {
        Ref("source_ref", _indicator(3)["id"], "essential"),
        Ref("target_ref", mal["id"], "essential"),
    }  # the well-known TLP marking is no reference to check
    assert items["report"].refs == (
        Ref("object_refs.[0]", mal["id"], "some"),
        Ref("object_refs.[1]", rel["id"], "some"),
    )


def test_versions_go_in_the_source_order_and_a_repeated_version_once() -> None:
    v1 = _sdo("malware", 1, name="v1", is_family=True)
    v2 = {**v1, "name": "v2", "modified": "2026-02-01T00:00:00.000Z"}
    other = _indicator(2)
    result = parse_stix(bundle(v2, other, v1, v2), default_tlp="GREEN")
    assert [(i.source_id, i.version) for i in result.items] == [
        (v1["id"], v1["modified"]),
        (v1["id"], v2["modified"]),
        (other["id"], other["modified"]),
    ]
    ((dup),) = result.skipped
    assert dup.reason == "a second copy of objects[0] (same id and version)"


def test_marking_definitions_go_wherever_an_object_using_them_goes() -> None:
    statement = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--33333333-3333-4333-8333-333333333333",
        "created": "2026-01-01T00:00:00Z",
        "definition_type": "statement",
        "definition": {"statement": "Copyright"},
    }
    green = _indicator(1, object_marking_refs=[GREEN, statement["id"]], labels=["fraud"])
    amber = _indicator(2, object_marking_refs=[AMBER, statement["id"]], labels=["malicious-code"])
    items = {
        i.source_id: i for i in parse_stix(bundle(statement, green, amber), default_tlp=None).items
    }
    assert items[statement["id"]].tlp == "GREEN"
    assert items[statement["id"]].categories == {"fraud", "malicious-code"}
    assert Ref("object_marking_refs.[1]", statement["id"], "essential") in items[green["id"]].refs


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
def test_own_marking_else_the_container_s_never_below_the_default(
    own: list[str], report: list[str], default: str | None
) -> None:
    def ref(m: str) -> str:
        return str(BUNDLED[m]["id"]) if m in BUNDLED else m

    def level(m: str) -> str | None:
        if m in BUNDLED:
            return LEVEL_OF_BUNDLED[m]
        return tlp.STIX_TLP1_IDS.get(m) or tlp.STIX_TLP2_IDS.get(m)

    ind = _indicator(7, object_marking_refs=[ref(m) for m in own]) if own else _indicator(7)
    rep = _sdo("report", 9, name="r", published="2026-01-01T00:00:00Z", object_refs=[ind["id"]])
    if report:
        rep["object_marking_refs"] = [ref(m) for m in report]
    result = parse_stix(bundle(*BUNDLED.values(), ind, rep), default_tlp=default)
    own_levels = [lv for lv in map(level, own) if lv is not None]
    from_container = [lv for lv in map(level, report) if lv is not None]
    expected = tlp.strictest([*(own_levels or from_container), default])
    published = {i.source_id: i.tlp for i in result.items}
    if expected is None:
        assert ind["id"] not in published
    else:
        assert published[ind["id"]] == expected
    assert accounted(result) == Counter(o["id"] for o in (*BUNDLED.values(), ind, rep))


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
        "type",
        "pattern",
        "pattern_type",
        "valid_from",
        "name",
        "object_marking_refs",
        "granular_markings",
        "kill_chain_phases",
        "external_references",
        "labels",
        "confidence",
        "spec_version",
        "object_refs",
        "source_ref",
        "created_by_ref",
        "modified",
        "published",
        "extensions",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["indicator", "report", "relationship", "x-acme"]),
    changes=st.dictionaries(FIELDS, JSON_VALUES, max_size=3),
    version=st.sampled_from(["2.0", "2.1"]),
)
def test_mangled_objects_are_skipped_never_crash(
    kind: str, changes: dict[str, Any], version: str
) -> None:
    base: dict[str, Any] = _indicator(1)
    if kind == "report":
        base = _sdo("report", 2, name="r", published="2026-01-01T00:00:00Z",
                    object_refs=[base["id"]])  # fmt: skip
    elif kind == "relationship":
        base = _sdo("relationship", 3, relationship_type="uses", source_ref=base["id"],
                    target_ref=base["id"])  # fmt: skip
    elif kind == "x-acme":
        base = _sdo("x-acme", 4, x_value=1)
    obj = {**base, **changes}
    result = parse_stix(bundle(obj, spec_version=version), default_tlp="GREEN")
    assert len(result.items) + len(result.skipped) == 1
    for item in result.items:
        assert item.record["object"]


def test_an_indicator_feed_is_checked_without_the_pattern_grammar_where_simple(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A simple pattern is checked without ANTLR (connectors._stix_patterns), every other
    one by stix2's grammar; a simple-looking bad one and a bad window are still skipped
    with stix2's reason."""
    from stix2patterns.validator import run_validator  # type: ignore[import-untyped]

    simple = "[domain-name:value = 'host1.example']"
    reached: list[str] = []

    def grammar(pattern: str, version: str = "2.1") -> list[str]:
        reached.append(pattern)
        errors: list[str] = run_validator(pattern, version)
        return errors

    monkeypatch.setattr("stix2.v21.sdo.run_validator", grammar)
    result = parse_stix(
        bundle(
            _indicator(1),
            _indicator(2, pattern="[file:size = 12]"),
            _indicator(3, pattern="[file:hashes.'MD5' = 'not a hash']"),
            _indicator(4, valid_until="2025-01-01T00:00:00Z"),
        ),
        default_tlp="GREEN",
    )
    assert [i.source_id for i in result.items] == [_indicator(n)["id"] for n in (1, 2)]
    reasons = {s.source_id: s.reason for s in result.skipped}
    assert "pattern" in reasons[_indicator(3)["id"]]
    assert "valid_until" in reasons[_indicator(4)["id"]]
    assert simple not in reached and "[file:size = 12]" in reached


def test_checked_in_worker_processes_the_result_is_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every sample's objects, with objects each check refuses, in one bundle: the parse
    with the checks spread over two processes equals the parse in this one, skips (their
    order too) and all."""
    from connectors.soc import _stix

    objects: list[Any] = []
    for path in example_files("stix/*.json") + public_files("stix/*.json"):
        objects += json.loads(path.read_text())["objects"]
    objects += [
        _indicator(1, pattern="[not a pattern"),  # stix2 refuses it
        "a string",  # not an object
        _indicator(2),
        _indicator(2),  # a second copy
        _sdo("x-unknown", 3) | {"type": "made-up"},  # an unknown type
        _sdo("malware", 4, is_family=True, spec_version="2.0"),  # a STIX 2.0 object
        _indicator(5, object_marking_refs=[RED]),
    ]
    data = bundle(*objects)
    serial = parse_stix(data, default_tlp="GREEN")
    calls: list[int] = []
    real = _stix.map_chunks

    def spy(fn: Any, items: Any, *, workers: int, chunk: int, stop: Any) -> Any:
        calls.append(workers)
        return real(fn, items, workers=workers, chunk=chunk, stop=stop)

    monkeypatch.setattr(_stix, "PARALLEL_FROM", 0)
    monkeypatch.setattr(_stix, "PARALLEL_CHUNK", 7)
    monkeypatch.setattr(_stix, "map_chunks", spy)
    parallel = parse_stix(data, default_tlp="GREEN", workers=2)
    assert calls == [2]
    assert len(serial.skipped) >= 5
    assert parallel.skipped == serial.skipped
    assert parallel.items == serial.items
    assert parallel.notes == serial.notes
