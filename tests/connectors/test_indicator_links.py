"""The indexed linking of indicators with observables finds what misp-stix's own loop finds."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from misp_stix_converter import ExternalSTIX2toMISPParser

from connectors._misp_stix import STIX2toMISPConverter

_TYPES = st.sampled_from(
    ["ipv4-addr", "ipv6-addr", "domain-name", "url", "file", "email-addr", "email-message",
     "network-traffic", "mac-addr", "artifact", "directory", "x-acme"]
)  # fmt: skip
_VALUES = st.sampled_from(["198.51.100.7", "bad.example", "a@b.example", "x.exe", "", "443"])
_LEAVES = _VALUES | st.integers(0, 3) | st.booleans()


class _Observable(dict[str, Any]):
    """An observable as misp-stix walks it: a mapping with a `type` attribute."""

    @property
    def type(self) -> str:
        return str(self["type"])


_REFERENCES = st.dictionaries(
    st.from_regex(r"indicator--[0-9]{1,3}", fullmatch=True),
    st.dictionaries(_TYPES, st.lists(_VALUES, max_size=3).map(tuple), min_size=1, max_size=2),
    max_size=12,
)
_FIELDS = st.dictionaries(
    st.sampled_from(["value", "name", "display_name", "dst_port", "id", "spec_version"]),
    _LEAVES | st.lists(_LEAVES, max_size=2) | st.dictionaries(st.just("MD5"), _VALUES),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(_REFERENCES, _TYPES, _FIELDS)
def test_an_observable_links_to_the_indicators_misp_stix_would_link_in_its_order(
    references: dict[str, dict[str, tuple[str, ...]]], obs_type: str, fields: dict[str, Any]
) -> None:
    converter = STIX2toMISPConverter()
    converter._indicator_references = references
    observable = _Observable(fields, type=obs_type)
    misp_stix = list(ExternalSTIX2toMISPParser._fetch_indicator_reference(converter, observable))
    indexed = list(converter._fetch_indicator_reference(observable))
    assert indexed == list(dict.fromkeys(misp_stix))  # the same, first seen first, each once


def test_a_value_that_cannot_be_hashed_is_compared_as_misp_stix_compares_it() -> None:
    converter = STIX2toMISPConverter()
    converter._indicator_references = {
        "indicator--1": {"ipv4-addr": ("198.51.100.7",)},
        "indicator--2": {"ipv4-addr": (["198.51.100.8"],)},  # odd, yet misp-stix would match
    }
    observable = _Observable(value="198.51.100.7", type="ipv4-addr", x=[{"y": ["198.51.100.8"]}])
    assert list(converter._fetch_indicator_reference(observable)) == ["indicator--1"]
    listed = _Observable(value=("198.51.100.7",), type="ipv4-addr")
    assert list(converter._fetch_indicator_reference(listed)) == list(
        ExternalSTIX2toMISPParser._fetch_indicator_reference(converter, listed)
    )


def test_a_new_bundle_is_looked_up_in_its_own_index() -> None:
    converter = STIX2toMISPConverter()
    observable = _Observable(value="198.51.100.7", type="ipv4-addr")
    converter._indicator_references = {"indicator--1": {"ipv4-addr": ("198.51.100.7",)}}
    assert list(converter._fetch_indicator_reference(observable)) == ["indicator--1"]
    converter._indicator_references = {"indicator--2": {"domain-name": ("198.51.100.7",)}}
    assert list(converter._fetch_indicator_reference(observable)) == ["indicator--2"]
    converter._indicator_references = {}
    assert list(converter._fetch_indicator_reference(observable)) == []
