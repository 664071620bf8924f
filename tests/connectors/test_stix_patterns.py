"""The ANTLR-free reading of simple STIX patterns gives misp-stix what its own parser gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stix2
from hypothesis import given, settings
from hypothesis import strategies as st
from misp_stix_converter.stix2misp.stix2_pattern_parser import STIX2PatternParser
from stix2patterns.validator import run_validator  # type: ignore[import-untyped]

from broker.errors import ConfigError
from connectors import _stix_patterns
from connectors._convert import parse_stix, stix_to_misp
from connectors._misp_stix import SimplePatternParser
from connectors._stix_object import references
from connectors._stix_patterns import simple_pattern_data, simple_pattern_valid
from tests.samples import sample_params

SHA256 = "a" * 64


def _read(parser: STIX2PatternParser, pattern: str) -> tuple[str, Any]:
    """What a parser makes of `pattern`: its data if valid, else its errors (or exception)."""
    try:
        parser.handle_indicator({"spec_version": "2.1", "pattern": pattern})
    except Exception as exc:  # misp-stix's own post-processing may raise on odd literals
        return "raised", type(exc).__name__
    if not parser.valid:
        return "invalid", parser.errors
    return "valid", parser.pattern


def assert_same(pattern: str) -> None:
    assert _read(SimplePatternParser(), pattern) == _read(STIX2PatternParser(), pattern)


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


_SIMPLE = [
    "[ipv4-addr:value = '198.51.100.7']",
    "[domain-name:value = 'bad.example']",
    "[url:value = 'https://bad.example/a?b=c&d=\\'e\\'']",
    f"[file:hashes.'SHA-256' = '{SHA256}']",
    f"[file:hashes.'SHA-256' = '{SHA256}' OR file:name = 'dropper.exe']",
    "[email-addr:value = 'a@b.example' AND email-addr:display_name = 'A B']",
    "[x-acme-thing:x_value = 'q\\\\w']",
]


@pytest.mark.parametrize("pattern", _SIMPLE)
def test_common_simple_patterns_take_the_fast_path_and_read_the_same(pattern: str) -> None:
    assert simple_pattern_data(pattern) is not None
    assert_same(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        "[ipv4-addr:value = '198.51.100.7'] OR [ipv4-addr:value = '198.51.100.8']",
        "[ipv4-addr:value != '198.51.100.7']",
        "[ipv4-addr:value IN ('198.51.100.7', '198.51.100.8')]",
        "[file:size = 12]",
        "[ipv4-addr:value = '198.51.100.7'] WITHIN 60 SECONDS",
        "[(ipv4-addr:value = '198.51.100.7')]",
        "[network-traffic:src_ref.value = '198.51.100.7' AND network-traffic:dst_port = 443]",
        "[file:hashes.MD5 = 'not a hash']",
        "[artifact:payload_bin MATCHES 'x']",
        "[x:true = 'a']",
        "[ipv4-addr:value='198.51.100.7']",
    ],
)
def test_anything_else_goes_to_misp_stix_and_reads_the_same(pattern: str) -> None:
    if "MD5 = 'not a hash'" not in pattern:
        assert simple_pattern_data(pattern) is None
    assert_same(pattern)


_TYPES = st.sampled_from(
    ["ipv4-addr", "ipv6-addr", "domain-name", "url", "file", "email-addr", "x-acme", "true"]
) | st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True)
_NAMES = st.sampled_from(
    ["value", "name", "hashes", "MD5", "SHA-256", "x y", "true", "false", "x'q", "a\\b"]
) | st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_STEP = _NAMES.map(lambda n: n if n.isidentifier() and n.islower() else _quoted(n)) | _NAMES.map(
    _quoted
)
_VALUES = st.text(max_size=20) | st.sampled_from(["198.51.100.7", SHA256, "a@b.example", ""])


@st.composite
def _comparison(draw: st.DrawFn) -> str:
    path = ".".join(draw(st.lists(_STEP, min_size=1, max_size=3)))
    return f"{draw(_TYPES)}:{path} = {_quoted(draw(_VALUES))}"


@st.composite
def _pattern(draw: st.DrawFn) -> str:
    comparisons = draw(st.lists(_comparison(), min_size=1, max_size=4))
    joined = comparisons[0]
    for comparison in comparisons[1:]:
        joined += draw(st.sampled_from([" OR ", " AND ", " or ", "  OR "])) + comparison
    return f"[{joined}]"


@settings(max_examples=300, deadline=None)
@given(_pattern())
def test_generated_patterns_read_the_same_on_either_path(pattern: str) -> None:
    assert_same(pattern)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[]:='\\ .-aOR1", max_size=40))
def test_arbitrary_text_reads_the_same_on_either_path(pattern: str) -> None:
    assert_same(pattern)


def assert_same_verdict(pattern: str) -> None:
    """The fast check says valid only where stix2patterns' validator does, and for a simple
    pattern it says what the validator says."""
    try:
        valid = not run_validator(pattern, "2.1")
    except Exception:  # stix2patterns raises on some input (an empty pattern)
        valid = False
    if simple_pattern_data(pattern) is not None:
        assert simple_pattern_valid(pattern) == valid
    else:
        assert not simple_pattern_valid(pattern)


@settings(max_examples=300, deadline=None)
@given(_pattern())
def test_generated_patterns_get_the_validators_verdict(pattern: str) -> None:
    assert_same_verdict(pattern)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[]:='\\ .-aOR1", max_size=40))
def test_arbitrary_text_gets_the_validators_verdict(pattern: str) -> None:
    assert_same_verdict(pattern)


def _indicator(pattern: str, **more: Any) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--2f3b1a8e-0d6c-4f5e-9a7b-1c2d3e4f5a6b",
        "created": "2026-03-01T09:00:00.000Z",
        "modified": "2026-03-01T09:00:00.000Z",
        "valid_from": "2026-03-01T00:00:00Z",
        "pattern_type": "stix",
        "pattern": pattern,
        **more,
    }


def _parsed(cls: Any, obj: dict[str, Any]) -> tuple[str, str]:
    try:
        return "parsed", cls(obj).serialize(sort_keys=True)
    except Exception as exc:
        return type(exc).__name__, str(exc)


_TIMES = st.sampled_from(
    [None, "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"]
)
_MORE = st.fixed_dictionaries(
    {},
    optional={
        "valid_until": _TIMES.filter(bool),
        "pattern_version": st.sampled_from(["2.1", "2.0", "2"]),
        "pattern_type": st.sampled_from(["stix", "sigma"]),
        "x_acme_score": st.integers(0, 9),
        "granular_markings": st.just(
            [{"marking_ref": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
              "selectors": ["pattern"]}]
        ) | st.just([{"lang": "en", "selectors": ["no_such_field"]}]),
    },
)  # fmt: skip


_INVALID = ["[file:hashes.'MD5' = 'not a hash']", "[x:true = 'a']", "[file:hashes.MD5 = 'x']"]


def _stix2_alone(obj: dict[str, Any]) -> Any:
    return stix2.parse(obj, allow_custom=True)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([*_SIMPLE, *_INVALID]) | _pattern(), _MORE)
def test_an_indicator_parses_as_with_stix2_alone(pattern: str, more: dict[str, Any]) -> None:
    """The same object, or the same error, whichever path its pattern takes."""
    obj = _indicator(pattern, **more)
    fast = _parsed(lambda o: _stix_patterns.Indicator(allow_custom=True, **o), obj)
    assert fast == _parsed(_stix2_alone, obj)
    assert _parsed(parse_stix, obj)[1] == fast[1] or fast[0] != "parsed"


def test_a_simple_pattern_skips_antlr_and_a_bad_one_is_still_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    simple = f"[file:hashes.'SHA-256' = '{SHA256}' OR file:name = 'dropper.exe']"
    monkeypatch.setattr("stix2.v21.sdo.run_validator", _refusing(simple))
    indicator = parse_stix(_indicator(simple))
    assert isinstance(indicator, stix2.v21.Indicator)
    assert indicator.pattern == simple
    with pytest.raises(ConfigError, match="pattern"):
        parse_stix(_indicator("[file:hashes.'MD5' = 'not a hash']"))  # simple, yet invalid
    with pytest.raises(ConfigError, match="valid_until"):
        parse_stix(_indicator(simple, valid_until="2026-02-01T00:00:00Z"))
    assert parse_stix(_indicator("[file:size = 12]")).pattern == "[file:size = 12]"  # ANTLR's


def _refusing(simple: str) -> Any:
    """stix2's pattern validator, refusing the pattern that must not reach it."""

    def validate(pattern: str, version: str = "2.1") -> list[str]:
        assert pattern != simple, f"{pattern} went to ANTLR"
        errors: list[str] = run_validator(pattern, version)
        return errors

    return validate


def test_a_bundle_of_indicators_becomes_the_same_misp_event_as_with_misp_stix_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """End to end through misp-stix: the fast path changes nothing in the event."""
    patterns = [
        "[ipv4-addr:value = '198.51.100.7']",
        f"[file:hashes.'SHA-256' = '{SHA256}' OR file:name = 'dropper.exe']",
        "[domain-name:value = 'bad.example' AND url:value = 'https://bad.example/x']",
        "[ipv4-addr:value = '198.51.100.8'] OR [ipv4-addr:value = '198.51.100.9']",
        "[network-traffic:dst_port = 443]",
    ]
    objects = [
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--2f3b1a8e-0d6c-4f5e-9a7b-1c2d3e4f5a{i:02d}",
            "created": "2026-03-01T09:00:00.000Z",
            "modified": "2026-03-01T09:00:00.000Z",
            "valid_from": "2026-03-01T00:00:00Z",
            "pattern_type": "stix",
            "pattern": pattern,
            "description": f"indicator {i}",
        }
        for i, pattern in enumerate(patterns)
    ]
    uuid = "5f3b1a8e-0d6c-4f5e-9a7b-1c2d3e4f5a6b"
    fast_reads: list[str] = []
    fast_read = simple_pattern_data

    def counted(pattern: str) -> Any:
        data = fast_read(pattern)
        if data is not None:
            fast_reads.append(pattern)
        return data

    monkeypatch.setattr("connectors._stix_patterns.simple_pattern_data", counted)
    with monkeypatch.context() as patched:
        patched.setattr(STIX2PatternParser, "_load_stix_21_pattern", _no_antlr(patterns[:3]))
        fast = stix_to_misp(objects, event_uuid=uuid)
    assert set(fast_reads) == set(patterns[:3])  # the simple ones never reached ANTLR
    monkeypatch.setattr(
        SimplePatternParser, "handle_indicator", STIX2PatternParser.handle_indicator
    )
    alone = stix_to_misp(objects, event_uuid=uuid)
    assert fast.get("Attribute") and fast.get("Object")
    for key in ("Attribute", "Object"):
        assert _stable(fast.get(key)) == _stable(alone.get(key))


def _no_antlr(simple: list[str]) -> Any:
    """misp-stix's ANTLR reading, refusing the patterns that must take the fast path."""
    antlr = STIX2PatternParser._load_stix_21_pattern

    def load(self: STIX2PatternParser, pattern: str) -> None:
        assert pattern not in simple, f"{pattern} went to ANTLR"
        antlr(self, pattern)

    return load


def _stable(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """`items` without what misp-stix makes random (uuid4) on every run: the uuids of a
    stix2-pattern object's attributes."""
    out = []
    for item in items or ():
        if item.get("name") == "stix2-pattern":
            attributes = [{k: v for k, v in a.items() if k != "uuid"} for a in item["Attribute"]]
            item = {**item, "Attribute": attributes}
        out.append(item)
    return out


def _partial_groups(path: Path) -> list[list[dict[str, Any]]]:
    """What a MISP sink may hold of a bundle when it renders it: its objects arrive one by one
    and some are withheld, so an object comes with none or only some of those it names (every
    object alone, with each one it names, and every prefix of a small bundle)."""
    objects = json.loads(path.read_text(encoding="utf-8"))["objects"]
    by_id = {o["id"]: o for o in objects}
    groups = [[o] for o in objects]
    groups += [
        [by_id[r.target], o]
        for o in objects
        for r in references(o)
        if r.target in by_id and r.target != o["id"]
    ]
    if len(objects) <= 30:
        groups += [objects[:n] for n in range(2, len(objects) + 1)]
    return groups


@pytest.mark.parametrize("path", sample_params("stix/*.json"))
def test_a_bundle_in_part_still_becomes_a_misp_event(path: Path | None) -> None:
    """A sighting sent before the identity it names made misp-stix raise AttributeError, which
    stopped a MISP sink at its next flush."""
    assert path is not None
    for group in _partial_groups(path):
        if any(o.get("spec_version") != "2.1" for o in group):
            continue  # STIX 2.0 goes to MISP another way (`connectors.soc` upgrades it)
        event = stix_to_misp(group, event_uuid="a3f234d2-26c5-5e83-b566-75da7c43e168")
        assert event["uuid"] == "a3f234d2-26c5-5e83-b566-75da7c43e168"
