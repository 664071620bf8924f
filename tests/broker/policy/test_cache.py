"""The decision cache: equals fresh Cedar decisions, is shared, resets on change."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.policy import TLPS, Message, PolicyEngine
from broker.trust.registry import CATEGORIES, Registry, load_registry
from tests.broker.policy.conftest import POLICIES, make_message, pd_fields

_ORGS = sorted(load_registry(POLICIES / "participants.yaml").participants)
_INCIDENTS = ("INC-1", "INC-2")

messages = st.builds(
    Message,
    sender=st.sampled_from(_ORGS),
    payload_type=st.sampled_from(
        ["Indicator", "IncidentReport", "SituationReport", "AssistanceRequest"]
    ),
    tlp=st.sampled_from(TLPS),
    categories=st.frozensets(st.sampled_from(CATEGORIES), max_size=3),
    handling=st.frozensets(st.sampled_from(["H0", "H1", "H2", "H3"]), max_size=3),
    personal_data=st.booleans(),
    recipients=st.frozensets(st.sampled_from(_ORGS), max_size=3),
    incident=st.sampled_from([None, *_INCIDENTS]),
    member_states=st.frozensets(st.sampled_from(["FR", "DE", "BE", "IT"]), max_size=3),
    exercise=st.sampled_from([None, None, "cyber-europe-2026", "blueolex-2026"]),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    m=messages,
    crisis=st.frozensets(st.sampled_from(_INCIDENTS)),
    action=st.sampled_from(["publish", "receive"]),
)
def test_cached_decisions_equal_fresh_cedar_decisions(
    engine: PolicyEngine, m: Message, crisis: frozenset[str], action: str
) -> None:
    # 300 messages x 14 organisations = 4,200 decisions; decide_all twice so the
    # second pass is served from the cache.
    fresh = engine.decide_all(m, crisis_incidents=crisis, action=action, cached=False)  # type: ignore[arg-type]
    for _ in range(2):
        cached = engine.decide_all(m, crisis_incidents=crisis, action=action)  # type: ignore[arg-type]
        assert cached == fresh
    org = fresh[0].org
    assert engine.decide(m, org, crisis_incidents=crisis, action=action) == fresh[0]  # type: ignore[arg-type]


def test_cache_is_shared_by_organisations_with_the_same_normalised_inputs(
    registry: Registry,
) -> None:
    engine = PolicyEngine.load(POLICIES, registry, personal_data_fields=pd_fields)
    m = make_message(tlp="GREEN", categories={"malicious-code"})
    decisions = engine.decide_all(m)
    # enisa, csirts-network and cert-eu-like participants share one entry, so do the ISACs
    assert engine.cache_size() < len(decisions)
    size = engine.cache_size()
    # a different sender of the same community, same labels: no new Cedar decision
    engine.decide_all(dataclasses.replace(m, sender="enisa"))
    assert engine.cache_size() == size


def test_steady_state_is_served_from_the_cache(registry: Registry) -> None:
    engine = PolicyEngine.load(POLICIES, registry, personal_data_fields=pd_fields)
    m = make_message(tlp="AMBER", categories={"fraud"})
    engine.decide_all(m)
    start = time.perf_counter()
    for _ in range(200):
        engine.decide_all(m, cached=False)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(200):
        engine.decide_all(m)
    warm = time.perf_counter() - start
    assert warm * 5 < cold


def test_reload_with_a_changed_registry_drops_the_cache(registry: Registry) -> None:
    engine = PolicyEngine.load(POLICIES, registry, personal_data_fields=pd_fields)
    m = make_message(tlp="CLEAR")
    assert engine.decide(m, "soc-fr").decision == "allow"
    before = engine.bundle_hash
    assert engine.reload() is False  # nothing changed
    participants = dict(registry.participants)
    participants["soc-fr"] = dataclasses.replace(registry.get("soc-fr"), status="suspended")
    changed = Registry(
        communities=registry.communities, participants=participants, digest="changed"
    )
    assert engine.reload(changed) is True
    assert engine.bundle_hash != before
    assert engine.cache_size() == 0
    assert engine.decide(m, "soc-fr").rules == ("inactive-receives-nothing",)


def test_reload_after_a_rule_edit_drops_the_cache(policies_copy: Path, registry: Registry) -> None:
    engine = PolicyEngine.load(policies_copy, registry, personal_data_fields=pd_fields)
    m = make_message(tlp="GREEN", sender="europol-ec3")
    assert engine.decide(m, "eeas-intcen").decision == "allow"
    before = engine.bundle_hash
    tlp = policies_copy / "tlp.cedar"
    tlp.write_text(
        tlp.read_text().replace('principal.role == "operational" };', 'principal.role == "x" };')
    )
    assert engine.reload() is True
    assert engine.bundle_hash != before
    assert engine.decide(m, "eeas-intcen").decision == "deny"


def test_bundle_hash_is_stable_across_loads(registry: Registry, engine: PolicyEngine) -> None:
    again = PolicyEngine.load(POLICIES, registry, personal_data_fields=pd_fields)
    assert again.bundle_hash == engine.bundle_hash
    assert len(engine.bundle_hash) == 64
