"""TLP levels: spelling, ordering, and the STIX / MISP forms connectors read and write."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import ConfigError
from connectors import tlp

SPELLINGS = st.sampled_from(
    ["clear", "TLP:WHITE", "white", "GREEN", "tlp:amber", "amber+strict", "AMBER_STRICT", "Red"]
)


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("tlp:white", "CLEAR"),
        ("TLP:CLEAR", "CLEAR"),
        ("green", "GREEN"),
        ("tlp:amber+strict", "AMBER+STRICT"),
        ("AMBER_STRICT", "AMBER+STRICT"),
        (" red ", "RED"),
    ],
)
def test_normalise_accepts_tlp1_and_tlp2_spellings(text: str, level: str) -> None:
    assert tlp.normalise(text) == level


@pytest.mark.parametrize("text", ["", "amber-strict", "tlp:purple", "TLP:"])
def test_normalise_refuses_non_levels(text: str) -> None:
    with pytest.raises(ConfigError, match="not a TLP level"):
        tlp.normalise(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), SPELLINGS), max_size=6))
def test_strictest_is_the_highest_ranked_level(levels: list[str | None]) -> None:
    present = [level for level in levels if level is not None]
    result = tlp.strictest(levels)
    if not present:
        assert result is None
    else:
        assert result is not None
        assert all(tlp.rank(result) >= tlp.rank(level) for level in present)
        assert result in {tlp.normalise(level) for level in present}


def test_misp_tags_round_trip_and_white_means_clear() -> None:
    for level in tlp.LEVELS:
        assert tlp.from_misp_tag(tlp.misp_tag(level)) == level
    assert tlp.from_misp_tag("tlp:white") == "CLEAR"
    assert tlp.from_misp_tag("ecsirt:malicious-code") is None
    assert tlp.from_misp_tag("tlp:ex:chr") is None


def test_stix_marking_ids_round_trip_and_tlp1_ids_are_read() -> None:
    for level in tlp.LEVELS:
        assert tlp.from_stix_marking(tlp.stix_marking_id(level), {}) == level
        definition = tlp.stix_marking_definition(level)
        assert tlp.from_stix_marking("marking-definition--x", {"marking-definition--x": definition})
    amber_tlp1 = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
    assert tlp.from_stix_marking(amber_tlp1, {}) == "AMBER"
    statement = {"definition_type": "statement", "definition": {"statement": "(c) someone"}}
    assert (
        tlp.from_stix_marking("marking-definition--s", {"marking-definition--s": statement}) is None
    )


def test_avro_symbol_spells_amber_strict_with_underscore() -> None:
    assert tlp.avro_symbol("amber+strict") == "AMBER_STRICT"
    assert tlp.avro_symbol("tlp:white") == "CLEAR"
