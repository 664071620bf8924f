"""Plain-words reasons for a decision, driven by the rules' annotations.

Cedar tells us which rules decided, but a default deny has no deciding rule.
To say why nothing allowed, each permit names its conditions in `@requires`
(from the vocabulary below); for a default deny we test each condition of the
permits for the message's TLP and word the ones that failed. Forbids carry
their own `@reason` text, filled from the same facts. The tests check that a
permit's named conditions hold exactly when Cedar says the permit applies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from broker.policy._bundle import Rule
from broker.vocabulary import ASSISTANCE_STEPS, CAPABILITY_ENTRY

DEFAULT_DENY = "default-deny"
DEFAULT_DENY_BASIS = "JCU rulebook v1, rule 1 (deny by default: only what a rule allows is shared)"
#: Member States an incident must affect to count as large-scale (rule 10).
LARGE_SCALE_MEMBER_STATES = 2


@dataclass(frozen=True, slots=True)
class Facts:
    """What explanations need about one request; all of it is in the cache key."""

    status: str
    community: str
    role: str
    origin_community: str
    tlp: str
    handling: frozenset[str]
    payload_type: str
    exercise: str | None
    categories: frozenset[str]
    covers: bool
    named: bool
    has_named: bool
    has_incident: bool
    crisis_declared: bool
    member_states: int

    def placeholders(self) -> dict[str, str]:
        return {
            "status": self.status,
            "community": self.community,
            "role": self.role,
            "origin_community": self.origin_community,
            "tlp": self.tlp,
            "handling": "+".join(sorted(self.handling)) or "none",
            "payload_type": self.payload_type,
            "exercise": self.exercise or "none",
            "categories": _list(self.categories),
        }


def _list(categories: frozenset[str]) -> str:
    return "[" + ", ".join(sorted(categories)) + "]"


def _mandate_text(f: Facts) -> str:
    if not f.categories:
        return "the message has no categories, so no mandate covers it"
    return f"mandate does not cover any of the categories {_list(f.categories)}"


def _crisis_text(f: Facts) -> str:
    if not f.has_incident:
        return "the message names no incident"
    return "no crisis is declared for the message's incident"


def _named_text(f: Facts) -> str:
    if not f.has_named:
        return "the sender named no recipients"
    return "is not among the recipients the sender named"


#: condition name -> (holds?, words for when it does not)
PREDICATES: Mapping[str, tuple[Callable[[Facts], bool], Callable[[Facts], str]]] = {
    "origin-community": (
        lambda f: f.community == f.origin_community,
        lambda f: (
            f"is in community '{f.community}', not the origin community '{f.origin_community}'"
        ),
    ),
    "other-community": (
        lambda f: f.community != f.origin_community,
        lambda f: f"is in the origin community '{f.origin_community}' (another rule covers it)",
    ),
    "operational": (
        lambda f: f.role == "operational",
        lambda f: f"role is '{f.role}', not 'operational'",
    ),
    "mandate-covers": (lambda f: f.covers, _mandate_text),
    "named": (lambda f: f.named, _named_text),
    "crisis-declared": (lambda f: f.crisis_declared, _crisis_text),
    "assistance-step": (
        lambda f: f.payload_type in ASSISTANCE_STEPS,
        lambda f: f"a {f.payload_type} is not a step of an assistance case",
    ),
    "capability-entry": (
        lambda f: f.payload_type == CAPABILITY_ENTRY,
        lambda f: f"a {f.payload_type} is not a capability inventory entry",
    ),
    "large-scale": (
        lambda f: f.member_states >= LARGE_SCALE_MEMBER_STATES,
        lambda f: (
            f"the incident affects {f.member_states} Member State(s); a large-scale incident "
            f"affects {LARGE_SCALE_MEMBER_STATES} or more"
        ),
    ),
}


def requirements_met(rule: Rule, facts: Facts) -> bool:
    """Whether every condition a permit names holds (explanation's view, not Cedar's)."""
    return all(PREDICATES[name][0](facts) for name in rule.requires)


def unmet(rule: Rule, facts: Facts) -> list[str]:
    return [PREDICATES[n][1](facts) for n in rule.requires if not PREDICATES[n][0](facts)]


#: Conditions that scope a permit to one kind of payload: a permit whose scope does not
#: hold is no candidate for the message (a default deny of an Indicator does not list
#: the assistance permits).
SCOPES = frozenset({"assistance-step", "capability-entry"})


def default_deny(permits: Iterable[Rule], facts: Facts) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Rule ids and reasons for a deny no forbid caused: the permits for the message's TLP and
    kind of payload that did not apply."""
    candidates = [
        r
        for r in permits
        if r.tlp == facts.tlp and all(PREDICATES[n][0](facts) for n in r.requires if n in SCOPES)
    ]
    if not candidates:
        return (DEFAULT_DENY,), (f"{DEFAULT_DENY}: no rule permits TLP:{facts.tlp}",)
    reasons = []
    for rule in candidates:
        missing = unmet(rule, facts) or ["does not apply"]
        reasons.append(f"{rule.id}: " + "; ".join(missing))
    return (DEFAULT_DENY, *(r.id for r in candidates)), tuple(reasons)


class _Placeholders(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def forbid_reason(rule: Rule, facts: Facts) -> str:
    return f"{rule.id}: " + rule.reason.format_map(_Placeholders(facts.placeholders()))


def permit_reason(rule: Rule) -> str:
    return f"{rule.id}: {rule.summary}"
