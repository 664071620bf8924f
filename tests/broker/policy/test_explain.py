"""The explanation layer's view of each permit (its @requires) matches what Cedar evaluates."""

from __future__ import annotations

import json

import cedarpy
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.policy import TLPS, Message, PolicyEngine
from broker.policy._engine import _facts
from broker.policy._entities import message_entity, request
from broker.policy._explain import requirements_met
from broker.vocabulary import CATEGORIES
from tests.broker.policy.conftest import POLICIES


def _permits_only() -> cedarpy.PolicySet:
    text = "\n".join(p.read_text() for p in sorted(POLICIES.glob("*.cedar")))
    est = json.loads(cedarpy.policies_to_json_str(text))
    est["staticPolicies"] = {
        k: v for k, v in est["staticPolicies"].items() if v["effect"] == "permit"
    }
    return cedarpy.PolicySet.from_json_str(json.dumps(est))


_PERMITS = _permits_only()
_ORGS = ["commission", "nis-cg", "europol-ec3", "eeas-intcen", "eda", "soc-fr", "isac-finance"]


@settings(max_examples=100, deadline=None)
@given(
    sender=st.sampled_from(_ORGS),
    tlp=st.sampled_from(TLPS),
    categories=st.frozensets(st.sampled_from(CATEGORIES), max_size=3),
    recipients=st.frozensets(st.sampled_from(_ORGS), max_size=2),
    incident=st.sampled_from([None, "INC-1"]),
    states=st.integers(0, 3),
    crisis=st.booleans(),
    payload_type=st.sampled_from(
        ["Indicator", "SituationReport", "AssistanceRequest", "AssistanceOffer", "CapabilityEntry"]
    ),
)
def test_each_permits_named_conditions_hold_exactly_when_cedar_applies_it(
    engine: PolicyEngine,
    sender: str,
    tlp: str,
    categories: frozenset[str],
    recipients: frozenset[str],
    incident: str | None,
    states: int,
    crisis: bool,
    payload_type: str,
) -> None:
    registry = engine.registry
    m = Message(
        sender=sender,
        payload_type=payload_type,
        tlp=tlp,
        categories=categories,
        recipients=recipients,
        incident=incident,
        member_states=frozenset(["FR", "DE", "BE"][:states]),
    )
    declared = crisis and incident is not None
    doc = [e for e in json.loads(str(engine._state.entities))]
    doc.append(message_entity("m", m, registry.get(sender).community, False))
    entities = cedarpy.Entities.from_json_str(json.dumps(doc))
    requests = [request(org, "publish", "m", declared) for org in _ORGS]
    answers = cedarpy.is_authorized_batch(requests, _PERMITS, entities)
    for org, answer in zip(_ORGS, answers, strict=True):
        applied = set(answer.diagnostics.id_annotations_by_reason.values())
        facts = _facts(registry.get(org), m, registry.get(sender), declared)
        predicted = {
            r.id
            for r in engine.rules.values()
            if r.tlp is not None and r.tlp == tlp and requirements_met(r, facts)
        }
        assert applied == predicted, org
