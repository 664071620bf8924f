"""What one audit leaf says: one decision of one enforcement point about one message.

An `AuditRecord` is plain data, built from what the policy engine returns
(`from_decision`) or from a receive-side rejection (`from_rejection`). The
content itself never enters the log, only its SHA-256. The log adds the
enforcement point, the leaf index and the link to the previous leaf when it
appends the record (see `LoggedRecord`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from broker.clock import to_millis, utc_now
from broker.errors import Rejected

Action = Literal["publish", "receive", "forward"]
Verdict = Literal["allow", "redact", "deny", "reject"]
ACTIONS: tuple[Action, ...] = ("publish", "receive", "forward")
VERDICTS: tuple[Verdict, ...] = ("allow", "redact", "deny", "reject")


class PolicyDecision(Protocol):
    """The shape of `broker.policy.Decision` that the audit log reads."""

    @property
    def org(self) -> str: ...
    @property
    def decision(self) -> str: ...
    @property
    def rules(self) -> tuple[str, ...]: ...
    @property
    def legal_basis(self) -> tuple[str, ...]: ...
    @property
    def obligations(self) -> tuple[str, ...]: ...
    @property
    def redact_fields(self) -> tuple[str, ...]: ...
    @property
    def reasons(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One decision, as the enforcement point hands it to the audit log."""

    action: Action
    organisation: str
    message_id: str
    decision: Verdict
    decision_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=utc_now)
    content_hash: bytes | None = None
    #: The message's labels as in the envelope (`eu.jcu.v1.Labels` fields), if known.
    labels: Mapping[str, Any] | None = None
    rule_ids: tuple[str, ...] = ()
    legal_basis: tuple[str, ...] = ()
    obligations: tuple[str, ...] = ()
    redacted_fields: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    rejection_reason: str | None = None
    policy_bundle_hash: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        if self.decision not in VERDICTS:
            raise ValueError(f"decision must be one of {', '.join(VERDICTS)}")
        object.__setattr__(self, "time", to_millis(self.time))

    @classmethod
    def from_decision(
        cls,
        decision: PolicyDecision,
        *,
        action: Action,
        message_id: str,
        content_hash: bytes | None,
        labels: Mapping[str, Any] | None,
        bundle_hash: str | None,
        time: datetime | None = None,
    ) -> AuditRecord:
        """The record of a policy decision (allow, redact or deny) about `decision.org`."""
        verdict = decision.decision
        if verdict not in ("allow", "redact", "deny"):
            raise ValueError(f"a policy decision is allow, redact or deny, not {verdict!r}")
        return cls(
            action=action,
            organisation=decision.org,
            message_id=message_id,
            decision=verdict,  # type: ignore[arg-type]  # checked just above
            time=time or utc_now(),
            content_hash=content_hash,
            labels=labels,
            rule_ids=tuple(decision.rules),
            legal_basis=tuple(decision.legal_basis),
            obligations=tuple(decision.obligations),
            redacted_fields=tuple(decision.redact_fields),
            reasons=tuple(decision.reasons),
            policy_bundle_hash=bundle_hash,
        )

    @classmethod
    def from_rejection(
        cls,
        error: Rejected,
        *,
        organisation: str,
        message_id: str,
        content_hash: bytes | None = None,
        labels: Mapping[str, Any] | None = None,
        bundle_hash: str | None = None,
        action: Action = "receive",
        time: datetime | None = None,
    ) -> AuditRecord:
        """The record of a refused input: the reason code, and the error's safe message."""
        return cls(
            action=action,
            organisation=organisation,
            message_id=message_id,
            decision="reject",
            time=time or utc_now(),
            content_hash=content_hash,
            labels=labels,
            reasons=(str(error),) if str(error) else (),
            rejection_reason=error.reason,
            policy_bundle_hash=bundle_hash,
        )


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    """A record as it sits in the log: its place in its enforcement point's tree."""

    enforcement_point: str
    index: int
    previous_leaf_hash: bytes
    record: AuditRecord
    #: The exact leaf data (the Avro single-object bytes on the topic) and its leaf hash.
    data: bytes
    leaf_hash: bytes
    #: Where it was read from, when it was read from Kafka.
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What `AuditLog.append` returns: where the decision went."""

    index: int
    leaf_hash: bytes
    decision_id: str
