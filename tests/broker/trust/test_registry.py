"""Registry facts: who may request mutual assistance on behalf of which Member State."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.errors import RegistryError
from broker.trust.registry import load_registry, parse_registry
from broker.vocabulary import EU_MEMBER_STATES

SOURCE = Path(__file__).resolve().parents[3] / "policies" / "participants.yaml"


def _document() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(SOURCE.read_text()))


def test_acts_for_in_the_sample_registry() -> None:
    registry = load_registry(SOURCE)
    assert registry.get("soc-fr").acts_for == {"FR"}
    assert registry.get("csirts-network").acts_for == set(EU_MEMBER_STATES)  # "*"
    assert registry.get("cert-eu").acts_for == frozenset()  # an EU body acts for no state
    assert len(EU_MEMBER_STATES) == 27


@pytest.mark.parametrize("value", [["US"], ["fr"], "FR", [1]])
def test_acts_for_names_eu_member_states_only(value: object) -> None:
    doc = _document()
    soc = next(p for p in doc["participants"] if p["id"] == "soc-fr")
    soc["acts_for"] = value
    with pytest.raises(RegistryError, match="acts_for"):
        parse_registry(doc)


def test_acts_for_is_not_part_of_what_an_organisation_claims() -> None:
    """The authority decides it, as it decides the status: a registration request's claim
    stays the same whatever acts_for says."""
    doc = _document()
    before = parse_registry(doc).get("soc-fr").claim()
    next(p for p in doc["participants"] if p["id"] == "soc-fr")["acts_for"] = ["FR", "BE"]
    assert parse_registry(doc).get("soc-fr").claim() == before
