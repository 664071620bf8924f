"""The JCU rulebook v1, rule by rule: the allow side and the deny side, with the rule ids named."""

from __future__ import annotations

import dataclasses

from broker.policy import DEFAULT_DENY, Decision, Message, PolicyEngine
from broker.trust.registry import Registry
from tests.broker.policy.conftest import MessageFactory

H1_OBLIGATION = "not for use in judicial proceedings without the provider's permission"


def suspended(engine: PolicyEngine, registry: Registry, org: str, status: str) -> PolicyEngine:
    participants = dict(registry.participants)
    participants[org] = dataclasses.replace(registry.get(org), status=status)  # type: ignore[arg-type]
    return engine.with_registry(
        Registry(communities=registry.communities, participants=participants)
    )


def reason_for(d: Decision, rule: str) -> str:
    found = [r for r in d.reasons if r.startswith(f"{rule}: ")]
    assert found, f"no reason for {rule} in {d.reasons}"
    return found[0]


# Rule 1: deny by default; forbid overrides permit; suspended/revoked get nothing


def test_rule1_default_deny_names_the_permits_that_did_not_apply(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    d = engine.decide(msg(tlp="GREEN", sender="europol-ec3"), "soc-fr")
    assert d.decision == "deny"
    assert d.rules == (DEFAULT_DENY, "tlp-green-origin-community", "tlp-green-operational")
    assert "not the origin community 'law_enforcement'" in reason_for(
        d, "tlp-green-origin-community"
    )
    assert "role is 'member', not 'operational'" in reason_for(d, "tlp-green-operational")
    assert d.legal_basis and "deny by default" in d.legal_basis[0]


def test_rule1_suspended_and_revoked_receive_nothing_even_when_a_permit_applies(
    engine: PolicyEngine, registry: Registry, msg: MessageFactory
) -> None:
    for status in ("suspended", "revoked"):
        e = suspended(engine, registry, "soc-fr", status)
        d = e.decide(msg(tlp="CLEAR"), "soc-fr")
        assert d.decision == "deny"
        assert d.rules == ("inactive-receives-nothing",)
        assert f"status is '{status}'" in reason_for(d, "inactive-receives-nothing")
        assert e.decide(msg(tlp="CLEAR"), "isac-energy").decision == "allow"


# Rule 2: TLP:CLEAR


def test_rule2_clear_goes_to_every_active_organisation(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    for org in ("partner-acme", "europol-ec3", "eeas-intcen", "enisa"):
        d = engine.decide(msg(tlp="CLEAR", categories={"malicious-code"}), org)
        assert (d.decision, d.rules) == ("allow", ("tlp-clear",))


def test_rule2_clear_is_not_sent_to_a_revoked_organisation(
    engine: PolicyEngine, registry: Registry, msg: MessageFactory
) -> None:
    e = suspended(engine, registry, "partner-acme", "revoked")
    assert e.decide(msg(tlp="CLEAR"), "partner-acme").rules == ("inactive-receives-nothing",)


# Rule 3: TLP:GREEN


def test_rule3_green_goes_to_origin_community_and_operational_participants(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    m = msg(tlp="GREEN")
    assert engine.decide(m, "isac-energy").rules == ("tlp-green-origin-community",)
    assert engine.decide(m, "europol-ec3").rules == ("tlp-green-operational",)
    assert engine.decide(m, "enisa").rules == (
        "tlp-green-origin-community",
        "tlp-green-operational",
    )


def test_rule3_green_does_not_go_to_members_of_other_communities(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    d = engine.decide(msg(tlp="GREEN", sender="eeas-intcen"), "isac-finance")
    assert d.decision == "deny"
    assert d.rules[0] == DEFAULT_DENY and "tlp-green-origin-community" in d.rules


# Rule 4: TLP:AMBER


def test_rule4_amber_origin_community_by_mandate(engine: PolicyEngine, msg: MessageFactory) -> None:
    d = engine.decide(msg(tlp="AMBER", categories={"fraud"}), "isac-finance")
    assert (d.decision, d.rules) == ("allow", ("tlp-amber-mandate",))
    # the recipient's own mandate is part of the legal basis
    assert (
        "FI-ISAC membership agreement; Regulation (EU) 2022/2554 (DORA), Art. 45" in d.legal_basis
    )


def test_rule4_amber_denied_when_mandate_covers_no_category(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    d = engine.decide(msg(tlp="AMBER", categories={"fraud"}), "commission")
    assert d.decision == "deny"
    assert d.rules[:2] == (DEFAULT_DENY, "tlp-amber-mandate")
    assert reason_for(d, "tlp-amber-mandate") == (
        "tlp-amber-mandate: mandate does not cover any of the categories [fraud]"
    )


def test_rule4_amber_operational_of_other_community_by_mandate(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    m = msg(tlp="AMBER", categories={"fraud"})
    d = engine.decide(m, "europol-ec3")
    assert (d.decision, d.rules) == ("allow", ("tlp-amber-operational",))
    denied = engine.decide(m, "eeas-intcen")
    assert denied.decision == "deny" and "tlp-amber-operational" in denied.rules
    assert "mandate does not cover" in reason_for(denied, "tlp-amber-operational")


# Rule 5: TLP:AMBER+STRICT


def test_rule5_amber_strict_operational_origin_with_mandate(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    d = engine.decide(msg(tlp="AMBER+STRICT", categories={"intrusions"}), "enisa")
    assert (d.decision, d.rules) == ("allow", ("tlp-amber-strict-mandate",))


def test_rule5_amber_strict_not_to_members_nor_other_communities(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    m = msg(tlp="AMBER+STRICT", categories={"intrusions"})
    member = engine.decide(m, "soc-fr")
    assert member.decision == "deny" and member.rules == (DEFAULT_DENY, "tlp-amber-strict-mandate")
    assert "role is 'member'" in reason_for(member, "tlp-amber-strict-mandate")
    other = engine.decide(m, "europol-ec3")
    assert (other.decision, other.rules) == ("deny", ("tlp-amber-strict-origin-only",))


# Rule 6: TLP:RED and named recipients


def test_rule6_red_goes_to_named_recipients(engine: PolicyEngine, msg: MessageFactory) -> None:
    m = msg(tlp="RED", recipients={"europol-ec3"})
    assert engine.decide(m, "europol-ec3").rules == ("tlp-red-named",)
    d = engine.decide(m, "enisa")
    assert (d.decision, d.rules) == ("deny", ("named-recipients-only",))


def test_rule6_red_without_named_recipients_goes_to_nobody(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    decisions = engine.decide_all(msg(tlp="RED"))
    assert {d.decision for d in decisions} == {"deny"}
    assert (
        reason_for(decisions[0], "tlp-red-named") == "tlp-red-named: the sender named no recipients"
    )


def test_rule6_naming_narrows_but_never_widens(engine: PolicyEngine, msg: MessageFactory) -> None:
    m = msg(tlp="AMBER", categories={"fraud"}, recipients={"europol-ec3", "eeas-intcen"})
    assert engine.decide(m, "europol-ec3").decision == "allow"
    assert engine.decide(m, "eeas-intcen").rules[:1] == (DEFAULT_DENY,)  # named, but no mandate
    assert engine.decide(m, "enisa").rules == (
        "named-recipients-only",
    )  # allowed by TLP, not named


def test_rule6_the_sender_is_not_a_recipient(engine: PolicyEngine, msg: MessageFactory) -> None:
    m = msg(tlp="CLEAR", recipients={"cert-eu", "enisa"})
    assert engine.decide(m, "cert-eu").rules == ("sender-not-recipient",)
    assert "cert-eu" not in {d.org for d in engine.decide_all(m)}


# Rule 7: handling codes


def test_rule7_h2_without_names_goes_to_operational_origin_participants(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    m = msg(tlp="GREEN", handling="H2")
    assert engine.decide(m, "enisa").decision == "allow"
    for org in ("soc-fr", "europol-ec3"):
        d = engine.decide(m, org)
        assert (d.decision, d.rules) == ("deny", ("handling-h2-h3-restricted",))
        assert "handling code H2" in reason_for(d, "handling-h2-h3-restricted")


def test_rule7_h3_with_names_goes_to_those_only(engine: PolicyEngine, msg: MessageFactory) -> None:
    m = msg(tlp="GREEN", handling="H3", recipients={"soc-fr"})
    assert engine.decide(m, "soc-fr").decision == "allow"
    assert "handling-h2-h3-restricted" in engine.decide(m, "enisa").rules


def test_rule7_h1_adds_the_no_judicial_use_obligation(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    d = engine.decide(msg(tlp="GREEN", handling="H1"), "europol-ec3")
    assert d.rules == ("tlp-green-operational", "handling-h1-no-judicial-use")
    assert d.obligations == (H1_OBLIGATION,)
    denied = engine.decide(msg(tlp="GREEN", handling="H1", sender="europol-ec3"), "soc-fr")
    assert denied.decision == "deny" and denied.obligations == ()


def test_rule7_codes_combine_h1_keeps_its_obligation_under_h2(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    m = msg(tlp="GREEN", handling=frozenset({"H1", "H2"}), recipients={"enisa"})
    named = engine.decide(m, "enisa")
    assert named.decision == "allow" and named.obligations == (H1_OBLIGATION,)
    assert "handling-h1-no-judicial-use" in named.rules
    other = engine.decide(m, "soc-fr")
    assert other.decision == "deny" and "handling-h2-h3-restricted" in other.rules


def test_rule7_h0_and_h1_change_no_decision(engine: PolicyEngine, msg: MessageFactory) -> None:
    plain = [d.decision for d in engine.decide_all(msg(tlp="AMBER", categories={"fraud"}))]
    for code in ("H0", "H1"):
        coded = engine.decide_all(msg(tlp="AMBER", categories={"fraud"}, handling=code))
        assert [d.decision for d in coded] == plain
    assert all(d.obligations == () for d in engine.decide_all(msg(tlp="CLEAR", handling="H0")))


# Rule 8: personal data


def test_rule8_diplomatic_gets_a_redacted_copy_where_fields_are_marked(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    d = engine.decide(
        msg(tlp="CLEAR", payload_type="IncidentReport", personal_data=True), "eeas-intcen"
    )
    assert d.decision == "redact"
    assert d.rules == ("personal-data-not-diplomatic-defence", "tlp-clear")
    assert d.redact_fields == ("reporter", "affected_persons")


def test_rule8_denied_when_the_type_marks_no_fields(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    d = engine.decide(msg(tlp="CLEAR", personal_data=True), "eeas-intcen")
    assert (d.decision, d.rules, d.redact_fields) == (
        "deny",
        ("personal-data-not-diplomatic-defence",),
        (),
    )


def test_rule8_redaction_only_when_denied_by_this_rule_alone(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    d = engine.decide(msg(tlp="CLEAR", payload_type="IncidentReport", personal_data=True), "hwp")
    assert d.decision == "deny"
    assert d.rules == ("personal-data-not-diplomatic-defence", "supporting-situation-reports-only")


def test_rule8_members_outside_the_origin_community(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    m = msg(tlp="CLEAR", payload_type="IncidentReport", personal_data=True, sender="europol-ec3")
    d = engine.decide(m, "isac-energy")
    assert d.decision == "redact" and d.rules[0] == "personal-data-members-origin-only"
    assert set(d.redact_fields) == {"reporter", "affected_persons"}
    same_community = msg(tlp="CLEAR", payload_type="IncidentReport", personal_data=True)
    assert engine.decide(same_community, "isac-energy").rules == ("tlp-clear",)


def test_rule8_law_enforcement_only_where_the_mandate_covers(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    covered = msg(tlp="CLEAR", categories={"fraud"}, personal_data=True)
    assert engine.decide(covered, "europol-ec3").decision == "allow"
    uncovered = msg(tlp="CLEAR", categories={"availability"}, personal_data=True)
    d = engine.decide(uncovered, "europol-ec3")
    assert (d.decision, d.rules) == ("deny", ("personal-data-law-enforcement-mandate",))


# Rule 9: supporting participants


def test_rule9_supporting_participants_receive_situation_reports(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    d = engine.decide(msg(tlp="GREEN", payload_type="SituationReport"), "nis-cg")
    assert (d.decision, d.rules) == ("allow", ("tlp-green-origin-community",))


def test_rule9_supporting_participants_get_nothing_else(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    d = engine.decide(msg(tlp="CLEAR", payload_type="Indicator"), "eda")
    assert (d.decision, d.rules) == ("deny", ("supporting-situation-reports-only",))
    assert "not 'Indicator'" in reason_for(d, "supporting-situation-reports-only")


# Rule 10: crisis


def _crisis_amber(msg: MessageFactory, states: set[str]) -> Message:
    return msg(tlp="AMBER", categories={"fraud"}, incident="INC-7", member_states=states)


def test_rule10_crisis_widens_amber_to_every_operational_participant(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    m = _crisis_amber(msg, {"FR", "DE"})
    for org in ("eeas-intcen", "commission", "eu-cyclone"):
        d = engine.decide(m, org, crisis_incidents=frozenset({"INC-7"}))
        assert (d.decision, d.rules) == ("allow", ("tlp-amber-crisis",))
    member = engine.decide(m, "isac-energy", crisis_incidents=frozenset({"INC-7"}))
    assert member.decision == "deny"


def test_rule10_no_widening_without_crisis_or_for_one_member_state(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    two = _crisis_amber(msg, {"FR", "DE"})
    d = engine.decide(two, "eeas-intcen", crisis_incidents=frozenset({"INC-other"}))
    assert d.decision == "deny" and "tlp-amber-crisis" in d.rules
    assert "no crisis is declared" in reason_for(d, "tlp-amber-crisis")
    one = _crisis_amber(msg, {"FR"})
    d = engine.decide(one, "eeas-intcen", crisis_incidents=frozenset({"INC-7"}))
    assert d.decision == "deny"
    assert "affects 1 Member State(s)" in reason_for(d, "tlp-amber-crisis")


# Rule 11: exercises


def test_rule11_exercise_messages_go_to_enrolled_organisations(
    engine: PolicyEngine, msg: MessageFactory
) -> None:
    m = msg(tlp="CLEAR", categories={"test"}, exercise="cyber-europe-2026", sender="enisa")
    assert engine.decide(m, "soc-fr").rules == ("tlp-clear",)
    d = engine.decide(m, "eu-cyclone")
    assert (d.decision, d.rules) == ("deny", ("exercise-enrolled-only",))
    assert "not enrolled in exercise 'cyber-europe-2026'" in reason_for(d, "exercise-enrolled-only")
