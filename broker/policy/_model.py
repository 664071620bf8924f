"""The values the policy layer takes and returns: message labels in, decisions out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from broker.vocabulary import HANDLING_CODES as HANDLING_CODES
from broker.vocabulary import TLP_LEVELS

#: The policy's name for the vocabulary's TLP levels.
TLPS: tuple[str, ...] = TLP_LEVELS

Verdict = Literal["allow", "redact", "deny"]
Action = Literal["publish", "receive"]


@dataclass(frozen=True, slots=True)
class Message:
    """The labels of one message that the policy depends on (never its content).

    `recipients` are the organisations the sender names; empty means none named.
    """

    sender: str
    payload_type: str
    tlp: str
    categories: frozenset[str] = frozenset()
    #: SIENA handling codes; they are independent restrictions, so all of them apply.
    handling: frozenset[str] = frozenset()
    personal_data: bool = False
    recipients: frozenset[str] = frozenset()
    incident: str | None = None
    member_states: frozenset[str] = frozenset()
    exercise: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether `org` may receive a message, by which rules, and why.

    `rules` are the `@id`s that decided: the permits (and obligation rules) for
    an allow, the forbids that fired for a deny, or "default-deny" followed by
    the permits for the message's TLP that did not apply. `reasons` say the
    same in plain words, one per rule.
    """

    org: str
    decision: Verdict
    rules: tuple[str, ...]
    legal_basis: tuple[str, ...]
    obligations: tuple[str, ...] = ()
    redact_fields: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        """True when the organisation gets the message, in full or redacted."""
        return self.decision != "deny"

    def to_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "decision": self.decision,
            "rules": list(self.rules),
            "legal_basis": list(self.legal_basis),
            "obligations": list(self.obligations),
            "redact_fields": list(self.redact_fields),
            "reasons": list(self.reasons),
        }
