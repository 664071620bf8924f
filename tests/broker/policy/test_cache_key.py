"""Every fact in the decision cache's key matters: inputs differing in one are not confused.

`test_cache.py` compares the cache with Cedar on random messages; this walks each
key fact deterministically. From a few base messages, one fact at a time takes
each of its values, in a row, on one engine: had the key left that fact out, a
later variant would be served an earlier one's decision. The recipient-side facts
(community, role, status, mandate, enrolment, named) vary across the registry's
organisations in every `decide_all`; one of them is suspended so that status varies
too; the sender, which `decide_all` leaves out, is asked about itself. The sample
bundle reads neither the action nor whether a message names an incident (only
through a declared crisis), so two rules that do are added: the cache must hold for
any bundle that loads, not only for the sample one.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.policy import TLPS, Message, PolicyEngine
from broker.trust.registry import Registry
from tests.broker.policy.conftest import POLICIES, make_message, pd_fields

#: Rules reading the two facts the sample bundle leaves to the crisis rule or ignores.
EXTRA_RULES = """
@id("test-receive-strict")
@rulebook("2")
@legal_basis("test basis")
@summary("test rule: the action matters")
@tlp("AMBER+STRICT")
@requires("")
permit (principal, action == Action::"receive", resource)
when { resource.tlp == "AMBER+STRICT" };

@id("test-red-incident")
@rulebook("2")
@legal_basis("test basis")
@summary("test rule: naming an incident matters")
@tlp("RED")
@requires("")
permit (principal, action in Action::"share", resource)
when { resource.tlp == "RED" && resource has incident };
"""

BASES = {
    "green": make_message(tlp="GREEN", categories={"malicious-code"}),
    "amber": make_message(tlp="AMBER", categories={"fraud"}, handling="H1"),
    "amber-strict-named": make_message(
        tlp="AMBER+STRICT", categories={"malicious-code"}, recipients={"eda", "enisa"}
    ),
    "red-incident": make_message(tlp="RED", categories={"fraud"}, incident="INC-1"),
    "clear-exercise": make_message(tlp="CLEAR", exercise="cyber-europe-2026"),
    "amber-crisis": make_message(
        tlp="AMBER", categories={"fraud"}, incident="INC-1", member_states={"FR", "DE"}
    ),
}
#: A crisis is declared for INC-1 throughout (but in the "crisis" fact's first variant).
CRISIS = frozenset({"INC-1"})

Variant = tuple[Message, frozenset[str], str]  # message, crisis incidents, action


def _set(**labels: object) -> Callable[[Message], Message]:
    def change(m: Message) -> Message:
        return dataclasses.replace(m, **labels)  # type: ignore[arg-type]

    return change


#: fact -> the values it takes, each as a change to a base message
FACTS: dict[str, list[Callable[[Message], Message]]] = {
    "tlp": [_set(tlp=t) for t in TLPS],
    "handling": [_set(handling=frozenset(h)) for h in ((), ("H0",), ("H1",), ("H2",), ("H3",))],
    "personal_data": [_set(personal_data=v, payload_type="IncidentReport") for v in (False, True)],
    "recipients": [_set(recipients=frozenset(r)) for r in ((), ("eda",), ("soc-fr", "enisa"))],
    "payload_type": [
        _set(payload_type=t)
        for t in ("Indicator", "IncidentReport", "SituationReport", "AssistanceRequest")
    ],
    "exercise": [_set(exercise=e) for e in (None, "cyber-europe-2026", "blueolex-2026")],
    # INC-2 is under no crisis: only whether an incident is named differs
    "incident": [_set(incident=i) for i in (None, "INC-2")],
    "member_states": [
        _set(member_states=frozenset(s)) for s in ((), ("FR",), ("FR", "DE", "BE", "IT"))
    ],
    "sender": [
        _set(sender=s) for s in ("cert-eu", "europol-ec3", "eeas-intcen", "eda", "isac-energy")
    ],
    "categories": [
        _set(categories=frozenset(c))
        for c in ((), ("fraud",), ("malicious-code",), ("fraud", "malicious-code"))
    ],
}


def _variants(base: Message, fact: str) -> list[Variant]:
    if fact == "action":
        return [(base, CRISIS, a) for a in ("publish", "receive")]
    if fact == "crisis":
        m = dataclasses.replace(base, incident="INC-1")
        return [(m, frozenset(), "publish"), (m, CRISIS, "publish")]
    return [(change(base), CRISIS, "publish") for change in FACTS[fact]]


@pytest.fixture(scope="module")
def suspended(registry: Registry) -> Registry:
    participants = dict(registry.participants)
    participants["soc-fr"] = dataclasses.replace(registry.get("soc-fr"), status="suspended")
    return Registry(communities=registry.communities, participants=participants, digest="s")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("bundle") / "policies"
    shutil.copytree(POLICIES, target)
    (target / "tests_extra.cedar").write_text(EXTRA_RULES)
    return target


@pytest.mark.parametrize("fact", [*FACTS, "action", "crisis"])
def test_inputs_differing_in_one_key_fact_get_their_own_decisions(
    bundle: Path, suspended: Registry, fact: str
) -> None:
    differed = False
    for base in BASES.values():
        engine = PolicyEngine.load(bundle, suspended, personal_data_fields=pd_fields)
        fresh_by_variant = []
        for m, crisis, action in _variants(base, fact):
            fresh = engine.decide_all(m, crisis_incidents=crisis, action=action, cached=False)  # type: ignore[arg-type]
            cached = engine.decide_all(m, crisis_incidents=crisis, action=action)  # type: ignore[arg-type]
            assert cached == fresh, f"{fact}: {m} served another input's decisions"
            # decide_all leaves the sender out; asked about itself, it is "the sender"
            own = engine.decide(m, m.sender, crisis_incidents=crisis, action=action)  # type: ignore[arg-type]
            assert own == engine.decide(
                m,
                m.sender,
                crisis_incidents=crisis,
                action=action,  # type: ignore[arg-type]
                cached=False,
            ), f"{fact}: the sender of {m} was served another organisation's decision"
            fresh_by_variant.append([(d.org, d.decision, d.rules) for d in fresh])
        differed |= any(f != fresh_by_variant[0] for f in fresh_by_variant)
    # the fact changes some decision of this bundle, so the walk can see a confusion
    assert differed, f"no base message's decisions depend on {fact}"
