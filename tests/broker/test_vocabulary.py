"""The one vocabulary agrees with the Avro schemas, and every layer uses it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker import vocabulary
from broker.envelope import labels
from broker.policy import _model
from connectors import tlp
from connectors.siena import _format as siena_format
from tests.samples import REPO


def _enums(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") == "enum":
            yield node
        for value in node.values():
            yield from _enums(value)
    elif isinstance(node, list):
        for value in node:
            yield from _enums(value)


def _schema_enums(name: str) -> list[list[str]]:
    found = []
    for path in sorted((REPO / "schemas").rglob("*.avsc")):
        if path.parent.name in {"legacy", "previous"}:
            continue
        for enum in _enums(json.loads(path.read_text(encoding="utf-8"))):
            if enum["name"] == name:
                found.append(enum["symbols"])
    return found


def test_tlp_levels_are_the_schemas_tlp_enum() -> None:
    found = _schema_enums("Tlp")
    assert found, "no Tlp enum in schemas/"
    avro = [vocabulary.tlp_avro_symbol(level) for level in vocabulary.TLP_LEVELS]
    assert all(symbols == avro for symbols in found)


def test_handling_codes_are_the_schemas_handling_code_enum() -> None:
    found = _schema_enums("HandlingCode")
    assert found, "no HandlingCode enum in schemas/"
    assert all(symbols == list(vocabulary.HANDLING_CODES) for symbols in found)


def test_every_layer_uses_the_one_vocabulary() -> None:
    """The envelope, the policy and the connectors hold the vocabulary's own tuples."""
    assert labels.TLP_LEVELS is vocabulary.TLP_LEVELS
    assert labels.HANDLING_CODES is vocabulary.HANDLING_CODES
    assert _model.TLPS is vocabulary.TLP_LEVELS
    assert _model.HANDLING_CODES is vocabulary.HANDLING_CODES
    assert tlp.LEVELS is vocabulary.TLP_LEVELS
    assert siena_format.HANDLING_CODES is vocabulary.HANDLING_CODES


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("white", "CLEAR"),
        ("TLP:WHITE", "CLEAR"),
        ("amber+strict", "AMBER+STRICT"),
        ("Amber_Strict", "AMBER+STRICT"),
        (" red ", "RED"),
        ("tlp:green", "GREEN"),
        ("purple", None),
        ("", None),
    ],
)
def test_tlp_level_reads_every_spelling(text: str, level: str | None) -> None:
    assert vocabulary.tlp_level(text) == level


@given(st.sampled_from(vocabulary.TLP_LEVELS), st.booleans(), st.booleans())
def test_tlp_level_is_case_insensitive(level: str, lower: bool, prefixed: bool) -> None:
    text = ("tlp:" if prefixed else "") + (level.lower() if lower else level)
    assert vocabulary.tlp_level(text) == level


@given(st.text(max_size=12))
def test_lookups_return_only_vocabulary_words(text: str) -> None:
    assert vocabulary.tlp_level(text) in (None, *vocabulary.TLP_LEVELS)
    assert vocabulary.handling_code(text) in (None, *vocabulary.HANDLING_CODES)
    assert vocabulary.category(text) in (None, *vocabulary.CATEGORIES)
    assert vocabulary.member_state(text) in (None, *vocabulary.EU_MEMBER_STATES)


def test_other_lookups_canonicalise() -> None:
    assert vocabulary.handling_code("h1") == "H1"
    assert vocabulary.handling_code("H4") is None
    assert vocabulary.category("Malicious_Code") == "malicious-code"
    assert vocabulary.category("bogus") is None
    assert vocabulary.member_state("fr") == "FR"
    assert vocabulary.member_state("EL") is None  # Greece is GR in ISO 3166-1
    assert vocabulary.member_state("US") is None
    assert vocabulary.not_member_states(["FR", "de"]) is None
    wrong = vocabulary.not_member_states(["FR", "EL", "US"])
    assert wrong is not None and wrong.startswith("EL, US are not EU Member States")
    assert "Greece is GR" in wrong
