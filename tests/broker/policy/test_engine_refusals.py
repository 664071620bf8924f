"""The engine refuses to decide on what it does not know, rather than decide wrongly.

An unknown sender, recipient, label or action, or a rule Cedar cannot
evaluate, is an error naming it: never a silent deny (or allow) that the cache
would then keep.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from broker.errors import PolicyError, RegistryError
from broker.policy import PolicyEngine
from broker.trust.registry import Registry
from tests.broker.policy.conftest import make_message, pd_fields

GOOD = make_message(tlp="GREEN", categories={"fraud"}, handling="H1")


@pytest.mark.parametrize("cached", [True, False])
def test_an_unknown_sender_or_recipient_is_a_registry_error(
    engine: PolicyEngine, cached: bool
) -> None:
    assert engine.decide(GOOD, "enisa", cached=cached).org == "enisa"  # the control
    with pytest.raises(RegistryError, match="unknown sender 'nobody'"):
        engine.decide(dataclasses.replace(GOOD, sender="nobody"), "enisa", cached=cached)
    with pytest.raises(RegistryError, match="unknown participant 'nobody'"):
        engine.decide(GOOD, "nobody", cached=cached)


@pytest.mark.parametrize(
    ("labels", "action", "problem"),
    [
        ({"tlp": "WHITE"}, "publish", "unknown TLP 'WHITE'"),
        ({"handling": frozenset({"H1", "H9"})}, "publish", r"unknown handling codes \['H9'\]"),
        ({"categories": frozenset({"gossip"})}, "publish", r"unknown categories \['gossip'\]"),
        ({}, "forward", "unknown action 'forward'"),
    ],
    ids=["tlp", "handling", "category", "action"],
)
@pytest.mark.parametrize("cached", [True, False])
def test_an_unknown_label_or_action_is_a_policy_error(
    engine: PolicyEngine, labels: dict[str, object], action: str, problem: str, cached: bool
) -> None:
    msg = dataclasses.replace(GOOD, **labels)  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match=problem):
        engine.decide(msg, "enisa", action=action, cached=cached)  # type: ignore[arg-type]


OVERFLOWING_RULE = """
@id("test-overflow")
@rulebook("2")
@legal_basis("test basis")
@summary("test rule whose evaluation fails: Long overflow")
@tlp("RED")
@requires("")
permit (principal, action in Action::"share", resource)
when { resource.tlp == "RED" && resource.member_states_affected + 9223372036854775807 > 0 };
"""


def test_a_rule_cedar_cannot_evaluate_is_an_error_not_a_deny(
    policies_copy: Path, registry: Registry
) -> None:
    (policies_copy / "test_overflow.cedar").write_text(OVERFLOWING_RULE)
    engine = PolicyEngine.load(policies_copy, registry, personal_data_fields=pd_fields)
    red = make_message(tlp="RED", categories={"fraud"})
    assert engine.decide(red, "enisa").org == "enisa"  # no Member State: no overflow
    with pytest.raises(PolicyError, match="Cedar could not evaluate a rule"):
        engine.decide(dataclasses.replace(red, member_states=frozenset({"FR"})), "enisa")
