"""The StixObject record and its parts: lossless through Avro, parts removed the STIX way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.schemas import SchemaStore
from connectors._stix_object import (
    format_selector,
    object_of,
    parse_selector,
    record_of,
    references,
    remove_parts,
    stix_time,
)


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return SchemaStore.load(Path(__file__).resolve().parents[2] / "schemas")


_ids = st.uuids().map(lambda u: f"indicator--{u}")
_text = st.text(min_size=1, max_size=12)


def _not_a_ref_key(key: str) -> bool:
    return not key.endswith(("_ref", "_refs"))


def _resolve(obj: Any, selector: str) -> Any:
    node = obj
    for step in parse_selector(selector):
        node = node[step]
    return node


@st.composite
def marked_objects(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A report with lists and nested values, granular markings on some of them, and a set
    of selectors to remove. Every leaf value is unique, so where it went can be told."""
    counter = iter(range(10_000))

    def unique(prefix: str) -> str:
        return f"{prefix}-{next(counter)}"

    refs = [f"indicator--00000000-0000-4000-8000-{n:012d}" for n in range(draw(st.integers(1, 5)))]
    obj: dict[str, Any] = {
        "type": "report",
        "spec_version": "2.1",
        "id": "report--00000000-0000-4000-8000-000000000001",
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "name": unique("name"),
        "published": "2026-01-01T00:00:00Z",
        "object_refs": refs,
        "labels": [unique("label") for _ in range(draw(st.integers(1, 4)))],
        "external_references": [
            {"source_name": unique("src"), "url": f"https://{unique('u')}.example"}
            for _ in range(draw(st.integers(0, 3)))
        ],
        "description": unique("desc"),
    }
    if not obj["external_references"]:
        del obj["external_references"]
    paths = ["name", "description", "labels"]
    paths += [f"labels.[{i}]" for i in range(len(obj["labels"]))]
    paths += [f"object_refs.[{i}]" for i in range(len(refs))]
    for i, _ in enumerate(obj.get("external_references", [])):
        paths += [f"external_references.[{i}]", f"external_references.[{i}].url"]
    markings = draw(st.lists(st.lists(st.sampled_from(paths), min_size=1, max_size=3,
                                      unique=True), max_size=3))  # fmt: skip
    if markings:
        obj["granular_markings"] = [
            {"marking_ref": f"marking-definition--00000000-0000-4000-8000-{n:012d}",
             "selectors": selectors}
            for n, selectors in enumerate(markings)
        ]  # fmt: skip
    removed = draw(st.lists(st.sampled_from(paths), max_size=4, unique=True))
    return obj, removed


def _leaves(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in _leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in _leaves(value)]
    return []


def _covered(path: str, removed: list[str]) -> bool:
    steps = parse_selector(path)
    return any(steps[: len(parse_selector(r))] == parse_selector(r) for r in removed)


@settings(max_examples=300, deadline=None)
@given(marked_objects())
def test_removed_parts_are_gone_and_markings_still_cover_the_same_values(
    case: tuple[dict[str, Any], list[str]],
) -> None:
    obj, removed = case
    out = remove_parts(obj, removed)
    remaining = set(_leaves(out))
    for selector in removed:
        assert remaining.isdisjoint(_leaves(_resolve(obj, selector))), selector
    gone = {leaf for selector in removed for leaf in _leaves(_resolve(obj, selector))}
    after = {m["marking_ref"]: m for m in out.get("granular_markings", [])}
    for marking in obj.get("granular_markings", []):
        before = {leaf for sel in marking["selectors"] for leaf in _leaves(_resolve(obj, sel))}
        now = after.get(marking["marking_ref"], {"selectors": []})
        covered = {leaf for sel in now["selectors"] for leaf in _leaves(_resolve(out, sel))}
        # the marking covers exactly what it covered, less what was removed
        assert covered == before - gone

    def no_empty_lists(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                assert value != []
                no_empty_lists(value)
        elif isinstance(node, list):
            for value in node:
                no_empty_lists(value)

    no_empty_lists(out)


@given(st.lists(st.integers(0, 20) | _text, min_size=1, max_size=4))
def test_selectors_parse_and_format_back(steps: list[int | str]) -> None:
    steps = [s for s in steps if not (isinstance(s, str) and ("." in s or s.startswith("[")))]
    if not steps:
        return
    selector = format_selector(tuple(steps))
    assert parse_selector(selector) == tuple(steps)


@settings(max_examples=100, deadline=None)
@given(
    custom=st.dictionaries(
        # Keys ending in _ref/_refs hold references by STIX's convention: not here.
        st.text(min_size=1, max_size=8).map(lambda k: f"x_{k}").filter(_not_a_ref_key),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5).filter(_not_a_ref_key), inner, max_size=3)
            ),
            max_leaves=10,
        ),
        max_size=4,
    ),
    refs=st.lists(_ids, max_size=3),
)
def test_every_property_survives_the_avro_record(
    custom: dict[str, Any], refs: list[str], store: SchemaStore
) -> None:
    obj = {
        "type": "x-acme-thing",
        "spec_version": "2.1",
        "id": "x-acme-thing--00000000-0000-4000-8000-000000000001",
        "created": "2026-01-01T00:00:00.123456Z",
        "modified": "2026-01-02T00:00:00.1Z",
        "x_acme_refs": refs,
        **custom,
    }
    _, decoded = store.decode(store.encode("StixObject", record_of(obj)))
    assert object_of(decoded) == obj
    assert decoded["refs"] == sorted(set(refs))
    assert decoded["modified"].isoformat() == "2026-01-02T00:00:00.100000+00:00"
    assert [r.target for r in references(obj)] == refs


def _strptime_time(value: str) -> datetime:
    """stix_time as it was before its fast path: strptime for the seconds."""
    text = value.strip()
    if not text.endswith(("Z", "z")):
        raise ValueError(value)
    head, _, fraction = text[:-1].partition(".")
    base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    if fraction and not fraction.isdigit():
        raise ValueError(value)
    return base + timedelta(microseconds=int((fraction or "0")[:6].ljust(6, "0")))


def _outcome(read: Any, value: str) -> Any:
    try:
        return read(value)
    except ValueError:
        return ValueError


_digits = st.text("0123456789", min_size=1, max_size=4)


_plain = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S")
)


@settings(max_examples=400, deadline=None)
@given(
    _plain
    | st.builds("{}{}".format, _plain, st.text(max_size=3))
    | st.builds("{}{}".format, st.text(max_size=2), _plain)
    | st.builds("{}-{}-{}T{}:{}:{}".format, *[_digits] * 6)
    | st.text(max_size=20),
    st.sampled_from(["", ".0", ".123", ".1234567", ".x"]),
    st.sampled_from(["Z", "z", "", "+00:00"]),
)
def test_stix_time_reads_as_strptime_did(head: str, fraction: str, zone: str) -> None:
    value = head + fraction + zone
    assert _outcome(stix_time, value) == _outcome(_strptime_time, value)


def _walked(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[str, str]]:
    """Every reference, walked the plain way (every value visited)."""
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = (*path, key)
            if key.endswith("_ref") and isinstance(value, str):
                out.append((format_selector(here), value))
            elif key.endswith("_refs") and isinstance(value, list):
                out += [
                    (format_selector((*here, i)), v)
                    for i, v in enumerate(value)
                    if isinstance(v, str)
                ]
            else:
                if key == "extensions" and isinstance(value, dict) and not path:
                    out += [
                        (format_selector((*here, n)), n)
                        for n in value
                        if n.startswith("extension-definition--")
                    ]
                out += _walked(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            out += _walked(item, (*path, i))
    return out


_keys = st.sampled_from(["a_ref", "b_refs", "extensions", "x", "sub_ref", "list", "c_refs"]) | _text
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text | _ids | st.just("extension-definition--1"),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=6))
def test_references_are_every_reference_in_document_order(obj: dict[str, Any]) -> None:
    assert [(r.path, r.target) for r in references(obj)] == _walked(obj)
