"""What an audit leaf says: decisions and outcomes of one enforcement point about one message.

An `AuditRecord` is plain data, built from what the policy engine returns
(`from_decision`), from a receive-side rejection (`from_rejection`), or from an
act the enforcement point records (`broker.audit.acts`: what was sent, a
retraction, a crisis declaration, a registry change). The content itself never
enters the log, only its keyed hash. The log adds the enforcement point, the
leaf index and the link to the previous leaf when it appends the record (see
`LoggedRecord`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, Protocol

from broker.clock import to_millis
from broker.errors import Rejected

Action = Literal[
    "publish", "receive", "forward", "send", "retract", "receipt", "crisis", "registry", "replay"
]
Verdict = Literal["allow", "redact", "deny", "reject", "sent", "unsent", "applied"]
#: In schema order (eu.jcu.v1.AuditAction): what an enforcement point did.
ACTIONS: tuple[Action, ...] = (
    "publish",
    "receive",
    "forward",
    "send",
    "retract",
    "receipt",
    "crisis",
    "registry",
    "replay",
)
#: In schema order (eu.jcu.v1.AuditDecision): decisions, then outcomes.
VERDICTS: tuple[Verdict, ...] = ("allow", "redact", "deny", "reject", "sent", "unsent", "applied")
DECISIONS: tuple[Verdict, ...] = VERDICTS[:4]
_NO_DETAILS: Mapping[str, str] = MappingProxyType({})
# The variant digit of an RFC 4122 UUID ("10" then two random bits) for each random hex digit.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def new_decision_id() -> str:
    """A random (version 4) RFC 4122 UUID, as `str(uuid.uuid4())` writes it, in a third of the time.

    122 bits from `os.urandom`, exactly as `uuid.uuid4` uses them: the version
    nibble is set to 4, the top two bits of the variant nibble to 10.
    """
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_decision_ids(n: int) -> tuple[str, ...]:
    """Ids for the `n` decisions of one leaf (or a pool a receiver draws from): random
    version 4 UUIDs that share their first 15 bytes, the last byte being the position
    (for up to 256 decisions).

    One random draw and one formatting per `n` ids instead of per id: the ids
    of one draw differ by position, those of two draws by 114 random bits.
    """
    if n > len(_POSITIONS):
        return tuple(new_decision_id() for _ in range(n))
    base = new_decision_id()[:-2]
    return tuple([base + position for position in _POSITIONS[:n]])


_POSITIONS = tuple(f"{i:02x}" for i in range(256))


def _now() -> datetime:
    """`broker.clock.utc_now()`, without converting a time that is already UTC."""
    t = datetime.now(UTC)
    return t - timedelta(0, 0, t.microsecond % 1000)  # faster than t.replace(microsecond=...)


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
    decision_id: str = field(default_factory=new_decision_id)
    time: datetime = field(default_factory=_now)
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
    #: The conversation the message belongs to (a workflow's thread: an assistance
    #: step's request id), so a thread's decisions are found without its content.
    thread: str | None = None
    #: Facts of the act (where a copy went, where a delivery came from): strings only.
    details: Mapping[str, str] = field(default_factory=lambda: _NO_DETAILS)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        if self.decision not in VERDICTS:
            raise ValueError(f"decision must be one of {', '.join(VERDICTS)}")
        t = self.time
        # Most times come from the clock, already UTC and whole milliseconds.
        if type(t) is not datetime or t.tzinfo is not UTC or t.microsecond % 1000:
            object.__setattr__(self, "time", to_millis(t))

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
        decision_id: str | None = None,
        thread: str | None = None,
        details: Mapping[str, str] = _NO_DETAILS,
    ) -> AuditRecord:
        """The record of a policy decision (allow, redact or deny) about `decision.org`;
        a fresh decision id unless one is given."""
        verdict = decision.decision
        if verdict not in ("allow", "redact", "deny"):
            raise ValueError(f"a policy decision is allow, redact or deny, not {verdict!r}")
        return _assemble(
            cls,
            {
                "action": action,
                "organisation": decision.org,
                "message_id": message_id,
                "decision": verdict,
                "decision_id": decision_id if decision_id is not None else new_decision_id(),
                "time": time or _now(),
                "content_hash": content_hash,
                "labels": labels,
                "rule_ids": tuple(decision.rules),
                "legal_basis": tuple(decision.legal_basis),
                "obligations": tuple(decision.obligations),
                "redacted_fields": tuple(decision.redact_fields),
                "reasons": tuple(decision.reasons),
                "rejection_reason": None,
                "policy_bundle_hash": bundle_hash,
                "thread": thread,
                "details": details,
            },
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
        thread: str | None = None,
        details: Mapping[str, str] = _NO_DETAILS,
    ) -> AuditRecord:
        """The record of a refused input: the reason code, and the error's safe message."""
        return cls(
            details=details,
            action=action,
            organisation=organisation,
            message_id=message_id,
            decision="reject",
            time=time or _now(),
            content_hash=content_hash,
            labels=labels,
            reasons=(str(error),) if str(error) else (),
            rejection_reason=error.reason,
            policy_bundle_hash=bundle_hash,
            thread=thread,
        )


# (field name, its slot's setter), in declaration order.
_SLOT_SETTERS: tuple[tuple[str, Callable[[AuditRecord, Any], None]], ...] = tuple(
    (f.name, AuditRecord.__dict__[f.name].__set__) for f in fields(AuditRecord)
)


def _assemble(cls: type[AuditRecord], values: dict[str, Any]) -> AuditRecord:
    """`cls(**values)` (every field given), in half the time for AuditRecord itself.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__`;
    setting the slots directly and then running the same `__post_init__` (the
    checks, the time normalisation) gives an equal, equally frozen record.
    Subclasses go through their own `__init__`.
    """
    if cls is not AuditRecord:
        return cls(**values)
    record: AuditRecord = object.__new__(cls)
    for name, set_slot in _SLOT_SETTERS:
        set_slot(record, values[name])
    record.__post_init__()
    return record


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


@dataclass(frozen=True, slots=True)
class LoggedLeaf:
    """One leaf as it sits in the log: the records an enforcement point wrote together
    about one message (one, or one per organisation), at one place in its tree.

    `records` is empty unless the reader holds the enforcement point's audit key
    (`opened`): the topic shows only where the leaf sits and how many records it holds.
    """

    enforcement_point: str
    index: int
    previous_leaf_hash: bytes
    records: tuple[AuditRecord, ...]
    #: The exact leaf data (the Avro single-object bytes on the topic) and its leaf hash.
    data: bytes
    leaf_hash: bytes
    #: Where it was read from, when it was read from Kafka.
    partition: int | None = None
    offset: int | None = None
    #: How many records the leaf says it holds (in the clear).
    count: int = 0
    #: The salt its sealing key is made from (see broker.audit.keys).
    salt: bytes = b""
    opened: bool = False

    @property
    def record(self) -> AuditRecord:
        """The leaf's first record (the leaf must be opened)."""
        return self.records[0]

    @property
    def first_decision_id(self) -> str | None:
        """What a verifier names when the leaf is at fault, if it could open it."""
        return self.records[0].decision_id if self.records else None

    def decisions(self) -> tuple[LoggedRecord, ...]:
        """Each record of the leaf, with the leaf's place in the tree (none if not opened)."""
        return tuple(
            LoggedRecord(
                self.enforcement_point,
                self.index,
                self.previous_leaf_hash,
                r,
                self.data,
                self.leaf_hash,
                self.partition,
                self.offset,
            )
            for r in self.records
        )


@dataclass(frozen=True, slots=True)
class DecisionSet:
    """All the policy decisions an enforcement point took at once about one message (a
    publish decides for every registered organisation): one leaf, written straight from
    the policy's answers, without an `AuditRecord` object per decision."""

    action: Action
    message_id: str
    decisions: tuple[PolicyDecision, ...]
    content_hash: bytes | None = None
    #: The message's labels as in the envelope (`eu.jcu.v1.Labels` fields), if known.
    labels: Mapping[str, Any] | None = None
    policy_bundle_hash: str | None = None
    time: datetime = field(default_factory=_now)
    #: The conversation the message belongs to (see `AuditRecord.thread`).
    thread: str | None = None

    def records(self, decision_ids: Sequence[str]) -> tuple[AuditRecord, ...]:
        """The decisions as AuditRecords with the given ids (what a leaf decodes to)."""
        if len(decision_ids) != len(self.decisions):
            raise ValueError("one decision id per decision")
        return tuple(
            AuditRecord.from_decision(
                d,
                action=self.action,
                message_id=self.message_id,
                content_hash=self.content_hash,
                labels=self.labels,
                bundle_hash=self.policy_bundle_hash,
                time=self.time,
                decision_id=decision_id,
                thread=self.thread,
            )
            for d, decision_id in zip(self.decisions, decision_ids, strict=True)
        )


@dataclass(frozen=True, slots=True)
class LeafEntry:
    """What `AuditLog.append_sets` returns per message: its leaf and its decisions' ids."""

    index: int
    leaf_hash: bytes
    decision_ids: tuple[str, ...]
