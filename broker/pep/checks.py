"""The receiving enforcement point's checks on an opened message, as named, composable objects.

The opener (`broker.envelope.opener`) proves who sent a record, for whom, when
and that nobody changed it. What it cannot know is whether the message may be
delivered *here*: whether the record key binds it to its partition, whether it
travels on the stream and kind of topic its labels say, whether the policy
still lets this participant have it. Each of those is one `ReceiveCheck`: a
small object that raises a `Rejected` error with its own stable `reason` (the
reason the audit log and the dead letters record), or returns. `AllOf`
(broker.envelope.checks, where the opener's own checks are) combines them, in
order, the first refusal deciding, in the spirit of sigstore-python's
verification policies.

The subscriber runs two policies (`arrival_checks`, then, for anything but a
retraction, `receipt_checks`); an embedding program may pass its own
(`Subscriber(..., arrival=..., receipt=...)`), typically the defaults plus
checks of its own: `AllOf([*receipt_checks(...).checks, MyCheck()])`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Protocol

from broker.envelope.checks import AllOf
from broker.envelope.header import EnvelopeHeader
from broker.envelope.labels import Labels
from broker.envelope.topics import stream_of
from broker.errors import ConfigError, MalformedRecord, Unauthorised, Unchecked
from broker.pep.workflow import WorkflowMessage, Workflows
from broker.policy import Decision, PolicyEngine
from broker.schemas import SchemaStore
from broker.trust.registry import Registry

__all__ = [
    "ActiveSender",
    "AllOf",
    "DeclaredPersonalData",
    "ExerciseSeparation",
    "PolicyRecheck",
    "ReceiveCheck",
    "ReceivePolicy",
    "Received",
    "RecordKeyBinding",
    "StreamPlacement",
    "WorkflowStep",
    "arrival_checks",
    "policy_decider",
    "receipt_checks",
]


@dataclass(eq=False)
class Received:
    """One opened message as the receive checks see it: where it was read, with which
    record key, what it is. `decision` (the policy's, for receipt) is asked once, when a
    check or the subscriber first needs it."""

    #: the topic the record was read from (the opener proved it is the one sealed for)
    topic: str
    #: the Kafka record key it came with
    key: bytes | None
    header: EnvelopeHeader
    #: the opened message's labels (decrypted: not the clear header's)
    labels: Labels
    #: the short Avro name of its payload ("Indicator", "Retraction", ...)
    payload_type: str
    record: Mapping[str, Any]
    #: the workflow it is a step of, and its thread, if any
    workflow: str | None = None
    thread: str | None = None
    decide: Callable[[Received], Decision] | None = field(default=None, repr=False)

    @cached_property
    def decision(self) -> Decision:
        if self.decide is None:
            raise ConfigError("no policy decides for these checks")
        return self.decide(self)

    @property
    def sender(self) -> str:
        return self.header.sender


class ReceivePolicy(Protocol):
    """Checks a received message: returns, or raises a `Rejected` error (`AllOf`, a check)."""

    def verify(self, received: Received) -> None: ...


class ReceiveCheck(ReceivePolicy, Protocol):
    """One check of a received message, named by the reason it refuses with."""

    #: the `Rejected.reason` it refuses with (what the audit log and dead letters record)
    reason: ClassVar[str]


@dataclass(frozen=True, slots=True)
class RecordKeyBinding:
    """The record key is the id the signed payload names: its message id, a retraction's
    target, a workflow message's thread. Otherwise a copy could race a seen message id
    onto another partition, ahead of the original, and the original be refused as a
    replay."""

    reason: ClassVar[str] = MalformedRecord.reason

    def verify(self, received: Received) -> None:
        keyed_by = (
            str(received.record["message_id"])
            if received.payload_type == "Retraction"
            else received.thread or received.header.message_id
        )
        if received.key != keyed_by.encode():
            raise MalformedRecord(
                f"record key {received.key!r} is not the message id {keyed_by}: refused, "
                "so that no one can race a message id onto another partition"
            )


@dataclass(frozen=True, slots=True)
class ExerciseSeparation:
    """Exercise traffic only on exercise topics, operational traffic only on the others,
    as the (encrypted) labels say."""

    reason: ClassVar[str] = Unauthorised.reason

    def verify(self, received: Received) -> None:
        exercise_topic = received.topic.startswith("jcu.exercise.")
        labels = received.labels
        if exercise_topic != (labels.exercise is not None):
            raise Unauthorised(
                "exercise traffic and operational topics never mix: "
                f"{'an operational' if labels.exercise is None else 'an exercise'} "
                f"message on {received.topic}"
            )


@dataclass(frozen=True, slots=True)
class StreamPlacement:
    """Each payload type on its own stream (a retraction travels with what it retracts)."""

    reason: ClassVar[str] = MalformedRecord.reason

    def verify(self, received: Received) -> None:
        short = received.payload_type
        if short == "Retraction":
            return
        try:
            stream = stream_of(short)
        except ConfigError:
            raise MalformedRecord(f"{short} is not a payload type to deliver") from None
        if received.topic.rsplit(".", 1)[1] != stream:
            raise MalformedRecord(f"a {short} travels on the {stream} stream, not {received.topic}")


@dataclass(frozen=True, slots=True)
class ActiveSender:
    """The sender is an active organisation in the newest registry snapshot accepted
    (a suspended one's key may still verify)."""

    registry: Callable[[], Registry]
    reason: ClassVar[str] = Unauthorised.reason

    def verify(self, received: Received) -> None:
        if self.registry().get(received.sender).status != "active":
            raise Unauthorised(f"{received.sender} is not an active organisation")


@dataclass(frozen=True, slots=True)
class DeclaredPersonalData:
    """A message whose content fills a personal-data field says so in its labels: the
    policy's personal-data rules decided on those labels."""

    store: SchemaStore
    reason: ClassVar[str] = Unauthorised.reason

    def verify(self, received: Received) -> None:
        if not received.labels.personal_data and self.store.has_personal_data(
            received.payload_type, received.record
        ):
            raise Unauthorised(
                f"message {received.header.message_id} carries personal data its labels "
                "do not declare"
            )


@dataclass(frozen=True, slots=True)
class PolicyRecheck:
    """The policy, asked again for receipt on the decrypted labels, lets `participant`
    have the message in full (a redacted copy with personal data in it was not meant
    for it)."""

    participant: str
    reason: ClassVar[str] = Unauthorised.reason

    def verify(self, received: Received) -> None:
        decision = received.decision
        if decision.decision == "deny" or (
            decision.decision == "redact" and received.labels.personal_data
        ):
            why = "; ".join(decision.reasons) or "denied by policy"
            raise Unauthorised(f"policy refuses {self.participant} this message: {why}")


@dataclass(frozen=True, slots=True)
class WorkflowStep:
    """A workflow's message passes its workflow's check (`broker.pep.workflow`); one whose
    workflow this node does not check is never delivered unchecked."""

    workflows: Workflows
    reason: ClassVar[str] = Unchecked.reason

    def verify(self, received: Received) -> None:
        if received.workflow is None or received.thread is None:
            return
        check = self.workflows.get(received.workflow)
        if check is None:
            raise Unchecked(
                f"a {received.payload_type} is a step of the {received.workflow} workflow, "
                "which this subscriber does not check: not delivered unchecked"
            )
        header = received.header
        check.inbound(
            WorkflowMessage(
                received.workflow,
                received.thread,
                header.message_id,
                header.sender,
                received.payload_type,
                received.record,
                received.labels,
                header.recipient_ids,
                header.created,
            )
        )


def arrival_checks() -> AllOf[Received]:
    """What every opened record must pass, a retraction too: bound to its partition by its
    key, on the kind of topic and the stream its labels and type say."""
    return AllOf((RecordKeyBinding(), ExerciseSeparation(), StreamPlacement()))


def receipt_checks(
    participant: str,
    *,
    registry: Callable[[], Registry],
    store: SchemaStore,
    workflows: Workflows,
) -> AllOf[Received]:
    """What a message must pass to be delivered to `participant` (after `arrival_checks`):
    from an active sender, its personal data declared, the policy still allowing it, its
    workflow's step allowed."""
    return AllOf(
        (
            ActiveSender(registry),
            DeclaredPersonalData(store),
            PolicyRecheck(participant),
            WorkflowStep(workflows),
        )
    )


def policy_decider(
    policy: PolicyEngine,
    participant: str,
    crisis_incidents: Callable[[], frozenset[str]],
) -> Callable[[Received], Decision]:
    """How a `Received`'s decision is asked: the policy for receipt by `participant`, with
    the incidents under a declared crisis at that moment."""
    from broker.pep.publisher import policy_message

    def decide(received: Received) -> Decision:
        header = received.header
        msg = policy_message(
            header.sender, received.payload_type, received.labels, header.recipient_ids
        )
        return policy.decide(
            msg, participant, crisis_incidents=crisis_incidents(), action="receive"
        )

    return decide
