"""The walls the registry implies (`plan_acls`) and how a cluster's state is compared with them."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.kafka.acl import (
    AclPlan,
    AclRule,
    ClusterWalls,
    Member,
    Roles,
    drift,
    plan_acls,
)
from broker.trust.registry import load_registry
from broker.vocabulary import COMMUNITIES

REPO = Path(__file__).resolve().parents[3]


def _members() -> list[Member]:
    registry = load_registry(REPO / "policies" / "participants.yaml")
    return [
        Member(p.id, p.community, p.status, p.exercises, p.role)
        for p in registry.participants.values()
    ]


def _topic(principal: str, name: str, op: str, prefixed: bool = False) -> AclRule:
    return AclRule(principal, "topic", "prefixed" if prefixed else "literal", name, op)


def test_an_organisation_reads_its_community_and_writes_every_community() -> None:
    plan = plan_acls([Member("eda", "defence")], Roles())
    mine = set(plan.for_principal("User:eda"))
    assert _topic("User:eda", "jcu.defence.", "READ", True) in mine
    reads = {r.name for r in mine if r.operation == "READ" and r.resource == "topic"}
    # the checkpoints as a witness of the others' logs: sizes and roots, never a leaf
    assert reads == {
        "jcu.defence.",
        "jcu.registry",
        "jcu.control",
        "jcu.capabilities",
        "jcu.audit.checkpoints",
    }
    writes = {r.name for r in mine if r.operation == "WRITE"}
    assert writes == {f"jcu.{c}." for c in COMMUNITIES} | {
        "jcu.audit.decisions",
        "jcu.audit.checkpoints",
        "jcu.audit.cosignatures",
        "jcu.dlq",
    }
    assert AclRule("User:eda", "group", "prefixed", "eda.", "READ") in mine
    assert not any(r.operation in ("CREATE", "DELETE", "ALTER", "ALTER_CONFIGS") for r in mine)


def test_exercise_topics_follow_enrolment() -> None:
    plan = plan_acls(
        [
            Member("enisa", "civilian", exercises=frozenset({"cyber-europe-2026"})),
            Member("commission", "civilian"),
        ],
        Roles(),
    )
    enrolled = _topic("User:enisa", "jcu.exercise.civilian.", "READ", True)
    assert enrolled in plan.rules
    assert not any("exercise" in r.name for r in plan.for_principal("User:commission"))


def test_only_crisis_authorities_write_control_and_only_the_authority_the_registry() -> None:
    plan = plan_acls(_members(), Roles())
    control = {
        r.principal for r in plan.rules if r.name == "jcu.control" and r.operation == "WRITE"
    }
    assert control == {"User:eu-cyclone", "User:csirts-network"}
    registry = {
        r.principal for r in plan.rules if r.name == "jcu.registry" and r.operation == "WRITE"
    }
    assert registry == {"User:registry-authority"}
    audit_readers = {
        r.principal
        for r in plan.rules
        if r.name.startswith("jcu.audit.")
        and r.operation == "READ"
        and r.name != "jcu.audit.checkpoints"
    }
    assert audit_readers == {"User:jcu-auditor", "User:jcu-console"}


def test_witnesses_read_checkpoints_and_write_cosignatures_only_if_named() -> None:
    members = [Member("enisa", "civilian"), Member("eda", "defence")]
    everyone = plan_acls(members, Roles())
    named = plan_acls(members, Roles(witnesses=("enisa",)))
    for plan, witnesses in ((everyone, {"User:enisa", "User:eda"}), (named, {"User:enisa"})):
        readers = {
            r.principal
            for r in plan.rules
            if r.name == "jcu.audit.checkpoints" and r.operation == "READ"
        }
        assert readers == witnesses | {"User:jcu-auditor", "User:jcu-console"}
        cosigners = {
            r.principal
            for r in plan.rules
            if r.name == "jcu.audit.cosignatures" and r.operation == "WRITE"
        }
        assert cosigners == witnesses
        # nobody but auditors reads the leaves
        assert {
            r.principal
            for r in plan.rules
            if r.name == "jcu.audit.decisions" and r.operation == "READ"
        } == {"User:jcu-auditor", "User:jcu-console"}


def test_only_jcu_participants_keep_capability_entries() -> None:
    plan = plan_acls(
        [Member("eda", "defence", role="supporting"), Member("isac", "civilian")], Roles()
    )
    on = [r for r in plan.rules if r.name == "jcu.capabilities"]
    writers = {r.principal for r in on if r.operation == "WRITE"}
    readers = {r.principal for r in on if r.operation == "READ"}
    assert writers == {"User:eda"} and readers == {"User:eda", "User:isac"}


def test_suspended_keep_a_login_and_no_acl_revoked_lose_both() -> None:
    plan = plan_acls(
        [Member("a", "civilian", "suspended"), Member("b", "civilian", "revoked")], Roles()
    )
    assert "a" in plan.users and not plan.for_principal("User:a")
    assert "b" not in plan.users and "b" in plan.retired and not plan.for_principal("User:b")
    # Their leftovers are in scope: apply removes them.
    assert plan.in_scope(_topic("User:a", "jcu.civilian.", "READ", True))
    assert plan.in_scope(AclRule("User:b", "group", "prefixed", "b.", "READ"))


def test_drift_names_missing_and_extra_bindings_within_scope_only() -> None:
    plan = plan_acls([Member("eda", "defence")], Roles())
    rules = set(plan.rules)
    dropped = _topic("User:eda", "jcu.defence.", "READ", True)
    rules.discard(dropped)
    hole = _topic("User:eda", "jcu.civilian.", "READ", True)
    wildcard = _topic("User:mallory", "*", "READ")
    foreign = _topic("User:billing-app", "billing.invoices", "READ")  # another tenant's
    found = drift(plan, ClusterWalls(frozenset(rules | {hole, wildcard, foreign}), frozenset()))
    assert found.missing == (dropped,)
    assert set(found.extra) == {hole, wildcard}
    assert found.users_missing == (
        "eda",
        "jcu-auditor",
        "jcu-console",
        "jcu-operator",
        "registry-authority",
    )
    assert not found.clean
    assert drift(plan, ClusterWalls(plan.rules, plan.users)).clean
    # A plan for its own principals only leaves everyone else's bindings alone.
    own = AclPlan(frozenset(), frozenset(), frozenset(), topic_prefix=None)
    assert drift(own, ClusterWalls(frozenset(rules | {hole, wildcard}), frozenset())).clean


def test_roles_file_and_name_clashes(tmp_path: Path) -> None:
    path = tmp_path / "platform.toml"
    path.write_text('auditors = ["audit-team"]\noperators = []\n')
    roles = Roles.load(path)
    assert roles.auditors == ("audit-team",) and roles.operators == ()
    assert roles.authorities == ("registry-authority",)
    with pytest.raises(ConfigError, match="both a participant and a platform role"):
        plan_acls([Member("audit-team", "civilian")], roles)
    path.write_text('auditors = "one"\n')
    with pytest.raises(ConfigError, match="list of user names"):
        Roles.load(path)
    path.write_text('auditor = ["x"]\n')
    with pytest.raises(ConfigError, match="unknown key"):
        Roles.load(path)
