"""What a node is entitled to have received: its community's records addressed to it,
opened and re-checked by the policy, read without a consumer group or side effects.

The situation report and the console are built from this, never from anything
the node could not have received: a record counts only if it is encrypted for
this participant, opens (signature, key validity, topic binding, expiry), and
the policy for receipt allows it now, with the live crisis state, exactly as
the subscriber checks it. Nothing is delivered, audited or acknowledged here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from broker.clock import utc_now
from broker.envelope import MemoryReplayGuard
from broker.envelope.header import decode_envelope
from broker.errors import JcuError, Rejected
from broker.kafka.scan import scan
from broker.kafka.stamps import appended_at
from broker.kafka.topics import community_topic
from broker.pep.checks import Received, WorkflowStep, policy_decider, receipt_checks
from broker.pep.context import PepContext
from broker.pep.sink import Delivery

#: The streams a situation report reads (receipts are the sender's, not content).
INBOX_STREAMS: tuple[str, ...] = ("indicators", "incidents", "reports", "assistance")


@dataclass(frozen=True, slots=True)
class Coverage:
    """What was read to build an inbox: the sources and what was left out, and why."""

    participant: str
    topics: tuple[str, ...]
    since: datetime
    until: datetime
    records: int
    addressed: int
    accepted: int
    refused: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "participant": self.participant,
            "topics": list(self.topics),
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "records_read": self.records,
            "addressed_to_participant": self.addressed,
            "accepted": self.accepted,
            "refused": dict(self.refused),
        }


@dataclass(frozen=True, slots=True)
class Inbox:
    deliveries: tuple[Delivery, ...]
    #: message id -> when its sender retracted it
    retracted: dict[str, datetime]
    coverage: Coverage


async def read_inbox(
    ctx: PepContext,
    participant: str,
    since: datetime,
    *,
    until: datetime | None = None,
    crisis_incidents: frozenset[str] = frozenset(),
    streams: Iterable[str] = INBOX_STREAMS,
) -> Inbox:
    """Every record appended to `participant`'s community topics in [since, until) that
    it is entitled to receive, opened; records it is not, counted by reason."""
    until = until or utc_now()
    me = ctx.registry.get(participant)
    topics = tuple(community_topic(me.community, s) for s in streams)
    opener = ctx.envelope.opener(participant, replay_guard=MemoryReplayGuard())
    store = ctx.envelope.store
    deliveries: list[Delivery] = []
    retracted: dict[str, datetime] = {}
    senders: dict[str, str] = {}
    refused: Counter[str] = Counter()
    records = addressed = 0
    # The subscriber's policy for receipt; a workflow's step counts whatever its thread's
    # state (nothing is delivered here, so no workflow is told of it).
    checks = receipt_checks(
        participant, registry=lambda: ctx.registry, store=store, workflows={}
    ).without(WorkflowStep)
    decide = policy_decider(ctx.policy, participant, lambda: crisis_incidents)
    async for r in scan(ctx.settings.kafka, topics):
        try:
            appended = appended_at(r)
        except Rejected as exc:
            refused[exc.reason] += 1
            continue
        if not since <= appended < until:
            continue
        records += 1
        value: bytes = r.value or b""
        try:
            env = decode_envelope(store, value)
        except JcuError:
            refused["malformed"] += 1
            continue
        if participant not in env.header.recipient_ids:
            continue
        addressed += 1
        try:
            opened = opener.open(value, topic=r.topic, decoded=env, appended=appended)
            short = opened.payload_type.rpartition(".")[2]
            if short == "Retraction":
                target = str(opened.record["message_id"])
                if senders.get(target) == opened.sender:
                    retracted[target] = opened.record["retracted"]
                continue
            received = Received(
                r.topic, r.key, opened.header, opened.labels, short, opened.record, decide=decide
            )
            checks.verify(received)
            decision = received.decision
        except Rejected as exc:
            refused[exc.reason] += 1
            continue
        senders[opened.message_id] = opened.sender
        deliveries.append(
            Delivery(
                participant=participant,
                message_id=opened.message_id,
                sender=opened.sender,
                payload_type=short,
                record=opened.record,
                labels=opened.labels,
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                created=opened.header.created,
                received=appended,
                redacted_fields=opened.labels.redacted_fields,
                obligations=decision.obligations,
            )
        )
    coverage = Coverage(
        participant, topics, since, until, records, addressed, len(deliveries), dict(refused)
    )
    return Inbox(tuple(deliveries), retracted, coverage)
