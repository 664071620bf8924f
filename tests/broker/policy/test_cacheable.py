"""Rules the decision cache cannot serve are refused at load, each use named.

The cache keys a decision on normalised recipient facts (`_cacheable`); a rule
reading anything else about the recipient would make two recipients with the
same key decide differently. Each case names the exact use found, so a check
that stops looking (and lets a broader one catch the rule by accident) fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import PolicyLoadError
from broker.policy import PolicyEngine
from broker.trust.registry import Registry
from tests.broker.policy.conftest import pd_fields

RULE = """
@id("extra-rule")
@rulebook("2")
@legal_basis("test basis")
@summary("test rule")
@tlp("CLEAR")
@requires("")
permit (PRINCIPAL, action in Action::"share", resource)
when { CONDITION };
"""


def _rule(condition: str, principal: str = "principal") -> str:
    return RULE.replace("PRINCIPAL", principal).replace("CONDITION", condition)


def _load_with(policies: Path, registry: Registry, rule: str) -> PolicyEngine:
    path = policies / "tlp.cedar"
    path.write_text(path.read_text() + rule)
    return PolicyEngine.load(policies, registry, personal_data_fields=pd_fields)


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (
            _rule('resource.tlp == "CLEAR"', principal='principal == Org::"soc-fr"'),
            "the rule's scope names a specific principal",
        ),
        (
            _rule('resource.tlp == "CLEAR" && principal != Org::"soc-fr"'),
            "the rule uses the principal itself",
        ),
        (
            _rule('resource.tlp == "CLEAR" && principal.categories.contains("fraud")'),
            "the rule reads principal.categories",
        ),
        (
            _rule('resource.tlp == "CLEAR" && resource.sender == Org::"cert-eu"'),
            "the rule reads resource.sender",
        ),
        (
            _rule('resource.tlp == "CLEAR" && resource.recipients.containsAll([Org::"eda"])'),
            "the rule reads resource.recipients",
        ),
    ],
    ids=["scope", "principal", "principal-attr", "sender", "recipients"],
)
def test_an_uncacheable_use_is_refused_and_named(
    policies_copy: Path, registry: Registry, rule: str, problem: str
) -> None:
    with pytest.raises(PolicyLoadError) as info:
        _load_with(policies_copy, registry, rule)
    assert info.value.rule == "extra-rule"
    assert str(info.value).split("; ", 1)[0].endswith(problem)


@pytest.mark.parametrize(
    "condition",
    [
        'resource.tlp == "CLEAR" && principal == resource.sender',
        'resource.tlp == "CLEAR" && resource.recipients.contains(principal)',
        'resource.tlp == "CLEAR" && principal.categories.containsAny(resource.categories)',
        'resource.tlp == "CLEAR" && principal.community == "civilian"',
    ],
)
def test_the_cacheable_shapes_load(policies_copy: Path, registry: Registry, condition: str) -> None:
    """The control: the shapes the cache key covers are accepted."""
    engine = _load_with(policies_copy, registry, _rule(condition))
    assert "extra-rule" in engine.rules
