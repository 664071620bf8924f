"""The publishing enforcement point: decide, seal per community, audit, produce, audit again.

For one payload it asks the policy about every registered organisation,
groups the organisations allowed (or allowed a redacted copy) by community,
and by the parts withheld from them (personal data, parts marked stricter than
the record, parts the caller restricts: broker.pep.parts),
seals one envelope per community and variant for exactly those organisations,
writes every decision to the audit log of `<participant>/publish`, produces
each envelope to `jcu.<community>.<stream>`, and then writes what became of
each copy (sent where, or not sent and why) as a later entry of the same log.
A crash between the two entries is settled on the next start
(`broker.pep.recovery`). The record key is the message id, so a later
retraction of it lands on the same partition, after it; a workflow's message
is keyed by its thread instead, and asked about by its workflow's check first
(`broker.pep.workflow`).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from broker import faults
from broker.audit import AuditKeys, AuditLog, AuditRecord, DecisionSet
from broker.audit.acts import KAFKA_ERROR, CopyOutcome, SendOutcome, retraction_sent
from broker.clock import to_millis, utc_now
from broker.envelope import Labels, Sealer, SealRequest, stream_of
from broker.envelope.labels import TLP_LEVELS, AvroLabelsCache
from broker.errors import ConfigError, KafkaUnavailable, Rejected, Unauthorised
from broker.kafka.clients import COMPRESSION, HouseClients, KafkaClients, start_client
from broker.kafka.topics import community_topic
from broker.lifecycle import Service, start_together, stop_together, to_the_end
from broker.logs import get_logger
from broker.pep.context import PepContext
from broker.pep.control import CrisisBoard
from broker.pep.message_ids import MessageIds
from broker.pep.parts import PART_MARKING_RULE, Part, Redactor, Restriction
from broker.pep.recovery import SENT_HOLD, settle_pending
from broker.pep.registry_audit import RegistryAudit
from broker.pep.sent import SentCopy, SentLog, SentMessage, SourceRef
from broker.pep.state_feeds import StateFeeds
from broker.pep.workflow import WorkflowCheck, WorkflowMessage, Workflows
from broker.policy import Decision, Message
from broker.trust.feed import RegistryFeed

if TYPE_CHECKING:
    from broker.metrics import Metrics

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CommunityCopy:
    community: str
    topic: str
    partition: int
    offset: int
    recipients: tuple[str, ...]
    redacted_fields: tuple[str, ...] = ()
    size: int = 0


@dataclass(frozen=True, slots=True)
class PublishResult:
    message_id: str
    payload_type: str
    labels: Labels
    copies: tuple[CommunityCopy, ...]
    decisions: tuple[Decision, ...] = field(repr=False)
    #: Who got this very message (same id) before: a re-publication, recognised by the
    #: sent index and not sent again (its copies are only those sent now, if any).
    already_sent_to: tuple[str, ...] = ()

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(sorted(r for c in self.copies for r in c.recipients))

    @property
    def already_sent(self) -> bool:
        """Whether the whole message had been sent before and nothing went now."""
        return bool(self.already_sent_to) and not self.copies

    @property
    def denied(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.decision == "deny")

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "type": self.payload_type,
            "labels": self.labels.to_json(),
            "copies": [
                {
                    "community": c.community,
                    "topic": c.topic,
                    "partition": c.partition,
                    "offset": c.offset,
                    "recipients": list(c.recipients),
                    "redacted_fields": list(c.redacted_fields),
                    "bytes": c.size,
                }
                for c in self.copies
            ],
            "denied": [{"org": d.org, "rules": list(d.rules)} for d in self.denied],
            **({"already_sent_to": list(self.already_sent_to)} if self.already_sent_to else {}),
        }


@dataclass(frozen=True, slots=True)
class Publication:
    """One payload to publish: what `Publisher.publish` takes, for `publish_many`.

    `parts` marked stricter than the labels' TLP reach only organisations the
    policy clears for that TLP; `restrict` narrows what named organisations
    get (the whole record, or parts); `redactor` removes parts from the record
    (required when either can withhold a part). `source` names what the record
    came from (its id and version in the source), kept in the sent index so a
    whole publication can be found again (`jcu retract --file`); without a
    `message_id`, it also derives the message id (`broker.pep.message_ids`), so
    publishing the same object version again is recognised and not repeated.
    """

    payload_type: str
    record: Mapping[str, Any]
    labels: Labels
    recipients: tuple[str, ...] = ()
    message_id: str | None = None
    parts: tuple[Part, ...] = ()
    restrict: Mapping[str, tuple[Restriction, ...]] = field(default_factory=dict)
    redactor: Redactor | None = None
    source: SourceRef | None = None


@dataclass(frozen=True, slots=True)
class Reach:
    """Who a publication would reach, decided now, sending nothing.

    `decisions`: one per organisation, after the policy, the parts and the
    restrictions (a part withheld makes the decision `redact`, naming it in
    `redact_fields`); `withheld`: per organisation that gets a copy, the parts
    removed from it (personal-data fields included).
    """

    decisions: tuple[Decision, ...]
    withheld: Mapping[str, tuple[str, ...]]

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(sorted(d.org for d in self.decisions if d.allowed))

    @property
    def denied(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.allowed)


@dataclass(frozen=True, slots=True)
class _Send:
    community: str
    redacted_fields: tuple[str, ...]
    request: SealRequest


#: A variant: (community, personal-data fields removed, parts removed).
_VariantKey = tuple[str, tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class _Decided:
    decisions: tuple[Decision, ...]
    groups: tuple[tuple[tuple[str, tuple[str, ...]], list[str]], ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    message_id: str
    short: str
    labels: Labels
    decisions: tuple[Decision, ...]
    audit: DecisionSet
    sends: list[_Send]
    #: The Kafka record key: the message id, or a workflow message's thread.
    key: str
    #: A workflow's check and the message as it sees it, told once the message is sent.
    workflow: tuple[WorkflowCheck, WorkflowMessage] | None = None
    source: SourceRef | None = None
    #: This message as sent before (same id), if it was: its topics are not sent to again.
    prior: SentMessage | None = None


class _Refused(Exception):
    """A workflow's check refused an item: audited, then its error raised."""

    def __init__(self, error: Rejected, record: AuditRecord) -> None:
        self.error = error
        self.record = record


_DecideCache = dict[tuple[str, Labels, frozenset[str]], _Decided]


#: The rule id of a denial for want of a key: the policy allowed the organisation, but
#: it has no usable KEM key to encrypt for (see `jcu keys list`).
NO_USABLE_KEY = "no-usable-key"


def _no_usable_key(org: str) -> Decision:
    return Decision(
        org,
        "deny",
        (NO_USABLE_KEY,),
        (),
        reasons=(
            f"{org} has no usable key to encrypt for (revoked, expired or never issued; "
            "see `jcu keys list`): allowed by the policy, but nothing is sealed for it",
        ),
    )


def _not_yet_sent(sends: list[_Send], prior: SentMessage) -> list[_Send]:
    """The copies of a message sent before under the same id, narrowed to the recipients
    that did not get it then (on each topic): none again to whom it reached (they would
    refuse it as a replay), and a copy to whom the earlier run did not reach (a community
    Kafka refused then, an organisation allowed only now)."""
    had: dict[str, set[str]] = {}
    for c in prior.copies:
        had.setdefault(c.topic, set()).update(c.recipients)
    out = []
    for send in sends:
        got = had.get(send.request.topic, set())
        new = tuple(r for r in send.request.recipients if r not in got)
        if len(new) == len(send.request.recipients):
            out.append(send)
        elif new:
            request = dataclasses.replace(send.request, recipients=new)
            out.append(dataclasses.replace(send, request=request))
    return out


def _denials(decisions: Iterable[Decision]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Who was denied a message and by which rules: what `jcu receipts` shows for them."""
    return tuple((d.org, tuple(d.rules)) for d in decisions if not d.allowed)


def rank_of(tlp: str) -> int:
    """0 for CLEAR up to 4 for RED."""
    return TLP_LEVELS.index(tlp)


def policy_message(
    sender: str, payload_type: str, labels: Labels, recipients: Iterable[str]
) -> Message:
    """The policy's view of a message: its labels, never its content."""
    return Message(
        sender=sender,
        payload_type=payload_type,
        tlp=labels.tlp,
        categories=frozenset(labels.categories),
        handling=frozenset(labels.handling_codes),  # independent restrictions: all apply
        personal_data=labels.personal_data,
        recipients=frozenset(recipients),
        incident=labels.incident,
        member_states=frozenset(labels.member_states),
        exercise=labels.exercise,
    )


def redact(
    schema: Mapping[str, Any], record: Mapping[str, Any], fields: Iterable[str]
) -> dict[str, Any]:
    """A copy of `record` with `fields` set to their schema defaults (null, empty)."""
    defaults = {f["name"]: f.get("default") for f in schema["fields"]}
    out = dict(record)
    for name in fields:
        if name not in defaults:
            raise ConfigError(f"cannot redact unknown field {name!r}")
        out[name] = copy.deepcopy(defaults[name])
    return out


class Publisher(Service):
    """Publishes as one participant. `async with Publisher(...)` or start()/stop()."""

    def __init__(
        self,
        participant: str,
        ctx: PepContext,
        *,
        audit: AuditLog | None = None,
        crisis: CrisisBoard | None = None,
        registry_feed: RegistryFeed | None = None,
        metrics: Metrics | None = None,
        compression: str = COMPRESSION,
        workflows: Workflows | None = None,
        log_registry: bool = True,
        sent_retention: timedelta | None = None,
        clients: KafkaClients | None = None,
        sent: SentLog | None = None,
    ) -> None:
        """`clients`: where the producer comes from (default: `HouseClients` of the node's
        connection; this publisher starts and stops it). `audit`, `sent`: the audit log and
        sent index to use instead of the node's own (`sent` is then the caller's to close).
        `metrics`: counted into if given (a service that serves them); by default nothing is
        counted."""
        ctx.registry.get(participant)
        self.participant = participant
        self._ctx = ctx
        self._sealer: Sealer = ctx.envelope.sealer(participant)
        self._audit = (
            audit
            if audit is not None
            else ctx.audit_log(participant, "publish", key_when_needed=True)
        )
        self._feeds = StateFeeds(ctx, crisis=crisis, registry=registry_feed)
        # Counted only into metrics the caller serves: a one-shot verb has none, and
        # prometheus_client's import is on its path to the first object.
        self._metrics = metrics
        self._compression = compression
        self._clients = clients if clients is not None else HouseClients(ctx.settings.kafka)
        self._producer: Any = None
        self._handed_any = False
        self._owns_sent = sent is None
        self._sent = (
            sent
            if sent is not None
            else SentLog(
                ctx.settings.home / "sent" / f"{participant}.sqlite",
                point=self._audit.enforcement_point,
                retention=sent_retention,
            )
        )
        self._ids = MessageIds(
            participant,
            AuditKeys.open(ctx.audit_dir, owner=participant).node_secret(
                f"message-id/{participant}"
            ),
        )
        self._avro_labels = AvroLabelsCache()
        self._workflows: Workflows = workflows or {}
        # The registry snapshots taking effect here, in this log (unless whoever shares the
        # log with others logs them, once: `log_registry=False`).
        self._registry_audit = (
            RegistryAudit(ctx.envelope.trusted, self._audit) if log_registry else None
        )

    async def start(self) -> None:
        try:
            # Independent of each other, so at once: a one-shot verb waits for their round
            # trips to Kafka before its first object is sent.
            # The signing key first: a wrong passphrase is this start's error, whatever Kafka.
            await start_together(
                self._open_signing_key,
                self._feeds.start,
                self._audit.start,
                self._start_producer,
            )
            if self._registry_audit is not None:
                await self._registry_audit.start()
            await settle_pending(
                self.participant,
                self._ctx.settings.kafka,
                self._ctx.envelope.store,
                self._audit,
                self._sent,
            )
            self._hold_sent()
        except BaseException:
            await to_the_end(self.stop())
            raise

    async def _open_signing_key(self) -> None:
        """Open the key (the keystore may still be unlocking: `Keystore.unlock_ahead`) in a
        thread, so the connections are made meanwhile."""
        await asyncio.to_thread(self._ctx.signing_key, self.participant)

    async def _start_producer(self) -> None:
        producer = self._clients.producer(compression_type=self._compression)
        await start_client(producer, self._ctx.settings.kafka)
        self._producer = producer

    async def stop(self) -> None:
        if self._registry_audit is not None:
            self._registry_audit.stop()
        try:
            # The state feeds only read: they stop while the producer and the audit log
            # finish (each client's stop may wait out a long poll).
            await stop_together(self._stop_writing, self._feeds.stop)
        finally:
            if self._owns_sent:
                self._sent.close()

    async def _stop_writing(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await self._audit.stop()

    @property
    def crisis(self) -> CrisisBoard:
        return self._feeds.crisis

    def community_of(self, org: str) -> str:
        """The community of a registered organisation."""
        return self._ctx.registry.get(org).community

    @property
    def sent(self) -> SentLog:
        """This node's index of what it sent (for retraction and "reached before")."""
        return self._sent

    @property
    def message_ids(self) -> MessageIds:
        """How this sender's message ids are derived from the source objects."""
        return self._ids

    def message_id_of(self, item: Publication) -> str | None:
        """The id `item` will be sent under if it is known now (given, or derived from its
        source); None for a record with neither (it gets a random one)."""
        if item.message_id is not None:
            return item.message_id
        return self._ids.of(item.source) if item.source is not None else None

    def already_sent(self, message_id: str) -> SentMessage | None:
        """The message as sent before under this id (to at least one organisation)."""
        prior = self._sent.get(message_id)
        return prior if prior is not None and prior.copies else None

    def decide(
        self,
        payload_type: str,
        labels: Labels,
        recipients: Iterable[str] = (),
        *,
        crisis_incidents: frozenset[str] | None = None,
    ) -> list[Decision]:
        """The policy's decision for every organisation; `crisis_incidents` defaults to
        what the crisis board says now."""
        named = frozenset(recipients)
        for r in named:
            self._ctx.registry.get(r)
        msg = policy_message(self.participant, payload_type, labels, named)
        if crisis_incidents is None:
            crisis_incidents = self._feeds.crisis.active_incidents()
        return self._ctx.policy.decide_all(msg, crisis_incidents=crisis_incidents)

    def _decide_groups(
        self, short: str, labels: Labels, recipients: frozenset[str], crisis: frozenset[str]
    ) -> _Decided:
        """Decisions, and the allowed organisations grouped by (community, redacted fields).

        An organisation the policy allows but that holds no usable KEM key (all
        revoked or expired, or never issued) cannot be encrypted for: it is denied
        here, by `NO_USABLE_KEY`, so that the others still get the message and the
        log says who did not and why.
        """
        now, keyring = utc_now(), self._ctx.envelope.keyring
        decisions = tuple(
            d if not d.allowed or keyring.can_receive(d.org, now) else _no_usable_key(d.org)
            for d in self.decide(short, labels, recipients, crisis_incidents=crisis)
        )
        groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for d in decisions:
            if d.allowed:
                community = self._ctx.registry.get(d.org).community
                fields = d.redact_fields if d.decision == "redact" else ()
                groups.setdefault((community, tuple(fields)), []).append(d.org)
        return _Decided(decisions, tuple(sorted(groups.items())))

    async def publish(
        self,
        payload_type: str,
        record: Mapping[str, Any],
        *,
        labels: Labels,
        recipients: Iterable[str] = (),
        message_id: str | None = None,
    ) -> PublishResult:
        """Decide, seal and produce one payload; every decision is audited."""
        item = Publication(payload_type, record, labels, tuple(recipients), message_id)
        return (await self.publish_many([item]))[0]

    async def publish_many(
        self, items: Sequence[Publication], *, crisis_incidents: frozenset[str] | None = None
    ) -> list[PublishResult]:
        """Publish several payloads at the cost of few: one audit write, one signature.

        Every item is validated, decided and sealed before anything is audited or
        sent, so a bad item (the first raises) publishes and records nothing.
        Results are in item order. `crisis_incidents` pins the crisis state (as a
        `reach` made earlier saw it); by default the crisis board's, now. An item
        whose message id the sent index holds is not sent again to a topic that has
        it (its result says `already_sent`); two items of one id in a batch raise.
        """
        if self._producer is None:
            raise ConfigError("publisher is not started")
        self._ctx.check_trusted()
        t0 = time.perf_counter()
        self._check_active()
        # One state for the whole batch: items with the same type, labels and named
        # recipients get the same decisions, so each such combination is decided once.
        crisis = (
            self._feeds.crisis.active_incidents() if crisis_incidents is None else crisis_incidents
        )
        decided: _DecideCache = {}
        try:
            plans = [self._plan(item, crisis, decided) for item in items]
        except _Refused as refused:
            # A workflow's refusal is a decision about the sender's own step: on the record.
            await self._audit.append(refused.record)
            raise refused.error from None
        twice = [m for m, n in Counter(p.message_id for p in plans).items() if n > 1]
        if twice:
            raise ConfigError(f"message id {twice[0]} is given to two items of one batch")
        repeated = {
            i: plan for i, plan in enumerate(plans) if plan.prior is not None and not plan.sends
        }
        if repeated:
            # Every topic has these already: nothing is recorded or sent again.
            everything = len(plans)
            plans = [p for i, p in enumerate(plans) if i not in repeated]
            fresh = iter(await self._send_plans(plans, t0) if plans else [])
            return [
                self._repeated(repeated[i]) if i in repeated else next(fresh)
                for i in range(everything)
            ]
        return await self._send_plans(plans, t0)

    async def _send_plans(self, plans: list[_Plan], t0: float) -> list[PublishResult]:
        """Seal, note as pending, audit, produce and record what became of each plan."""
        # Sealed before the audit write: a batch the sealer refuses leaves no decisions
        # in the log for messages never sent.
        sealed = self._sealer.seal_many([s.request for plan in plans for s in plan.sends])
        # Pending until their outcome is recorded: a restart after a crash settles them.
        self._sent.begin(
            (self._sent_message(plan, plan.sends) for plan in plans),
            int(to_millis(utc_now()).timestamp() * 1000),
            mark=self._audit.mark(),
        )
        self._hold_sent()
        # Recorded before anything is shared: no decision is acted on without its record.
        await self._audit.append_sets([plan.audit for plan in plans])
        faults.point("publisher.after-audit")
        self._sent.producing(plan.message_id for plan in plans)
        metas = await self._produce(
            sealed, [plan.key.encode() for plan in plans for _ in plan.sends]
        )
        # Where each copy went, noted before its outcome is audited: after a crash here the
        # restart knows without reading topics it may not read (other communities').
        placed = []
        landed = iter(metas)
        for plan in plans:
            for send in plan.sends:
                meta = next(landed)
                if not isinstance(meta, BaseException):
                    placed.append(
                        (
                            plan.message_id,
                            send.request.topic,
                            tuple(send.request.recipients),
                            int(meta.partition),
                            int(meta.offset),
                        )
                    )
        self._sent.produced(placed)
        faults.point("publisher.after-send")
        produced = iter(zip(metas, sealed, strict=True))
        results = []
        outcomes: list[SendOutcome] = []
        failed: list[str] = []
        for plan in plans:
            copies = []
            done = []
            for send in plan.sends:
                meta, message = next(produced)
                error = meta if isinstance(meta, BaseException) else None
                done.append(
                    CopyOutcome(
                        send.community,
                        send.request.topic,
                        send.request.recipients,
                        partition=None if error else meta.partition,
                        offset=None if error else meta.offset,
                        error=KAFKA_ERROR if error else None,
                        reason=f"Kafka did not take it: {error}" if error else "",
                        redacted_fields=send.redacted_fields,
                    )
                )
                if error is not None:
                    failed.append(f"{plan.message_id} to {send.request.topic}: {error}")
                    continue
                copies.append(
                    CommunityCopy(
                        send.community,
                        send.request.topic,
                        meta.partition,
                        meta.offset,
                        send.request.recipients,
                        send.redacted_fields,
                        len(message.data),
                    )
                )
            outcomes.append(SendOutcome(plan.message_id, tuple(done)))
            results.append(
                PublishResult(
                    plan.message_id,
                    plan.short,
                    plan.labels,
                    tuple(copies),
                    plan.decisions,
                    tuple(sorted(plan.prior.recipients)) if plan.prior is not None else (),
                )
            )
        await self._audit.append_sets(outcomes)  # a leaf each, after its decisions
        mark = self._audit.mark()
        self._sent.add_many(
            (
                SentMessage(
                    r.message_id,
                    self.participant,
                    r.payload_type,
                    r.labels,
                    (
                        *(plan.prior.copies if plan.prior is not None else ()),
                        *(
                            SentCopy(c.community, c.topic, c.recipients, c.redacted_fields)
                            for c in r.copies
                        ),
                    ),
                    plan.source,
                    _denials(plan.decisions),
                )
                for r, plan in zip(results, plans, strict=True)
            ),
            settled=[plan.message_id for plan in plans],
            mark=mark,
        )
        self._hold_sent()
        for plan, result in zip(plans, results, strict=True):
            if plan.workflow is not None and result.copies:
                check, told = plan.workflow
                check.sent(dataclasses.replace(told, recipients=result.recipients))
        if failed:
            raise KafkaUnavailable(
                f"{len(failed)} copies were not sent (recorded as not sent in the audit log): "
                + "; ".join(failed[:3])
            )
        if self._metrics is not None:
            self._count(self._metrics, results)
            self._metrics.publish_seconds.observe(time.perf_counter() - t0)
        return results

    def _repeated(self, plan: _Plan) -> PublishResult:
        assert plan.prior is not None  # noqa: S101 - narrows for mypy: a repeat has a prior
        return PublishResult(
            plan.message_id,
            plan.short,
            plan.labels,
            (),
            (),
            tuple(sorted(plan.prior.recipients)),
        )

    def reach(
        self, items: Sequence[Publication], *, crisis_incidents: frozenset[str] | None = None
    ) -> list[Reach]:
        """Who each item would reach and what each would get: decided as `publish_many`
        decides, sending and recording nothing (`jcu publish --dry-run`, and a caller
        that must know every item's recipients before it restricts any)."""
        self._check_active()
        crisis = (
            self._feeds.crisis.active_incidents() if crisis_incidents is None else crisis_incidents
        )
        store = self._ctx.envelope.store
        decided: _DecideCache = {}
        out = []
        for item in items:
            short = store.full_name(item.payload_type).rpartition(".")[2]
            stream_of(short)
            store.encode(short, item.record)  # a record publish_many would refuse reaches no one
            labels = self._effective_labels(short, item)
            decisions, variants = self._item_decisions(short, item, labels, crisis, decided)
            withheld = {
                org: tuple(sorted({*pd, *parts}))
                for (_, pd, parts), orgs in variants.items()
                for org in orgs
                if pd or parts
            }
            out.append(Reach(decisions, withheld))
        return out

    def _hold_sent(self) -> None:
        """The audit log keeps (past checkpoints) what a restart would read back for the
        messages pending in the sent index, and nothing for it once none is."""
        mark = self._sent.audit_mark()
        if mark is not None and self._sent.has_pending():
            self._audit.hold(SENT_HOLD, mark)
        else:
            self._audit.release(SENT_HOLD)

    def _check_active(self) -> None:
        if self._ctx.registry.get(self.participant).status != "active":
            raise Unauthorised(f"{self.participant} is not an active organisation; it cannot share")

    def _effective_labels(self, short: str, item: Publication) -> Labels:
        labels = item.labels
        if not labels.personal_data and self._ctx.envelope.store.has_personal_data(
            short, item.record
        ):
            # The content decides, not the caller's label: rule 8 must see personal data.
            labels = dataclasses.replace(labels, personal_data=True)
        return labels

    def _sent_message(self, plan: _Plan, sends: Sequence[_Send]) -> SentMessage:
        return SentMessage(
            plan.message_id,
            self.participant,
            plan.short,
            plan.labels,
            tuple(
                SentCopy(s.community, s.request.topic, s.request.recipients, s.redacted_fields)
                for s in sends
            ),
            plan.source,
            _denials(plan.decisions),
        )

    async def _produce(self, sealed: Sequence[Any], keys: Sequence[bytes]) -> list[Any]:
        """Produce every envelope under its record key; per envelope its RecordMetadata, or
        the exception that kept Kafka from taking it (recorded as not sent, never lost)."""
        from aiokafka.errors import KafkaError

        futures: list[Any] = []
        for message, key in zip(sealed, keys, strict=True):
            try:
                futures.append(
                    await self._producer.send(message.header.topic, value=message.data, key=key)
                )
                if not self._handed_any:
                    # When a run's first object went, for whoever reads the logs at INFO.
                    self._handed_any = True
                    _log.info("first envelope handed to Kafka", participant=self.participant)
            except KafkaError as exc:
                failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                failed.set_exception(exc)
                futures.append(failed)
        return list(await asyncio.gather(*futures, return_exceptions=True))

    def _decided(
        self,
        short: str,
        labels: Labels,
        named: frozenset[str],
        crisis: frozenset[str],
        cache: _DecideCache,
    ) -> _Decided:
        key = (short, labels, named)
        known = cache.get(key)
        if known is None:
            known = cache[key] = self._decide_groups(short, labels, named, crisis)
        return known

    def _item_decisions(
        self,
        short: str,
        item: Publication,
        labels: Labels,
        crisis: frozenset[str],
        cache: _DecideCache,
    ) -> tuple[tuple[Decision, ...], dict[_VariantKey, list[str]]]:
        """Every organisation's decision, and the allowed ones grouped by variant.

        The policy decides on the labels; then each part marked stricter than the
        labels' TLP is withheld from the organisations the policy does not clear
        for that TLP (decided on the same labels with the part's TLP); then the
        caller's restrictions withhold the whole record or parts of it.
        """
        named = frozenset(item.recipients)
        known = self._decided(short, labels, named, crisis, cache)
        if not item.parts and not item.restrict:
            return known.decisions, {
                (community, fields, ()): orgs for (community, fields), orgs in known.groups
            }
        base = rank_of(labels.tlp)
        cleared: dict[str, frozenset[str]] = {}
        for tlp in {p.tlp for p in item.parts if rank_of(p.tlp) > base}:
            stricter = self._decided(
                short, dataclasses.replace(labels, tlp=tlp), named, crisis, cache
            )
            cleared[tlp] = frozenset(d.org for d in stricter.decisions if d.allowed)
        decisions: list[Decision] = []
        variants: dict[_VariantKey, list[str]] = {}
        registry = self._ctx.registry
        for d in known.decisions:
            if not d.allowed:
                decisions.append(d)
                continue
            restrictions = item.restrict.get(d.org, ())
            whole = [r for r in restrictions if r.whole]
            if whole:
                decisions.append(
                    Decision(
                        d.org,
                        "deny",
                        tuple(dict.fromkeys(r.rule for r in whole)),
                        (),
                        reasons=tuple(r.reason for r in whole),
                    )
                )
                continue
            marked = [p for p in item.parts if p.tlp in cleared and d.org not in cleared[p.tlp]]
            parts = tuple(
                sorted({p.name for p in marked} | {n for r in restrictions for n in r.parts})
            )
            pd_fields = d.redact_fields if d.decision == "redact" else ()
            if parts:
                if item.redactor is None:
                    raise ConfigError("a publication that withholds parts needs a redactor")
                d = Decision(
                    d.org,
                    "redact",
                    tuple(
                        dict.fromkeys(
                            (
                                *d.rules,
                                *((PART_MARKING_RULE,) if marked else ()),
                                *(r.rule for r in restrictions),
                            )
                        )
                    ),
                    d.legal_basis,
                    d.obligations,
                    tuple(sorted({*pd_fields, *parts})),
                    (
                        *d.reasons,
                        *(
                            f"{p.name} is marked TLP:{p.tlp}, for which {d.org} is not cleared"
                            for p in marked
                        ),
                        *(r.reason for r in restrictions),
                    ),
                )
            decisions.append(d)
            community = registry.get(d.org).community
            variants.setdefault((community, tuple(pd_fields), parts), []).append(d.org)
        return tuple(decisions), dict(sorted(variants.items()))

    def _plan(self, item: Publication, crisis: frozenset[str], decided: _DecideCache) -> _Plan:
        """Validate, decide, and say what to audit and what to seal for one payload."""
        store = self._ctx.envelope.store
        short = store.full_name(item.payload_type).rpartition(".")[2]
        stream = stream_of(short)
        known = self.message_id_of(item)
        mid = known or str(uuid.uuid4())
        record = item.record
        encoded = store.encode(short, record)  # validates the record before anything is decided
        content_hash = self._audit.content_hash(encoded)  # keyed: the log confirms no guess
        labels = self._effective_labels(short, item)
        workflow = self._workflow_step(short, mid, record, labels, item.recipients)
        thread = workflow[1].thread if workflow is not None else None
        decisions, variants = self._item_decisions(short, item, labels, crisis, decided)

        audit = DecisionSet(
            "publish",
            mid,
            decisions,
            content_hash=content_hash,
            labels=self._avro_labels(labels),
            policy_bundle_hash=self._ctx.policy.bundle_hash,
            thread=thread,
        )
        sends = []
        for (community, fields, parts), orgs in variants.items():
            topic = community_topic(community, stream, exercise=labels.exercise is not None)
            body: Mapping[str, Any] = record
            if parts:
                assert item.redactor is not None  # noqa: S101 - _item_decisions checked
                body = item.redactor(record, frozenset(parts))
            if fields:
                body = redact(store.schema(short), body, fields)
            removed = tuple(sorted({*fields, *parts}))
            variant_labels = labels
            if removed:
                kept = [p.tlp for p in item.parts if p.name not in parts]
                variant_labels = Labels.of(
                    max((labels.tlp, *kept), key=rank_of),
                    handling_codes=labels.handling_codes,
                    categories=labels.categories,
                    personal_data=labels.personal_data and not fields,
                    exercise=labels.exercise,
                    incident=labels.incident,
                    member_states=labels.member_states,
                    redacted_fields=removed,
                )
            elif item.parts:
                # The whole record, its stricter parts included: labelled as strict as they are.
                top = max((labels.tlp, *(p.tlp for p in item.parts)), key=rank_of)
                if top != labels.tlp:
                    variant_labels = dataclasses.replace(labels, tlp=top)
            request = SealRequest(
                short,
                body,
                recipients=tuple(sorted(orgs)),
                topic=topic,
                labels=variant_labels,
                target_community=community,
                message_id=mid,
                payload=None if removed else encoded,
            )
            sends.append(_Send(community, removed, request))
        prior = self.already_sent(mid) if known is not None else None  # a fresh id: never
        if prior is not None:
            sends = _not_yet_sent(sends, prior)
        return _Plan(
            mid,
            short,
            labels,
            decisions,
            audit,
            sends,
            thread or mid,
            workflow,
            item.source,
            prior,
        )

    def _workflow_step(
        self,
        short: str,
        mid: str,
        record: Mapping[str, Any],
        labels: Labels,
        recipients: tuple[str, ...],
    ) -> tuple[WorkflowCheck, WorkflowMessage] | None:
        """For a workflow's message: its check (which must allow it now) and the message."""
        flow = self._ctx.envelope.store.workflow(short)
        if flow is None:
            return None
        check = self._workflows.get(flow.name)
        if check is None:
            raise ConfigError(
                f"a {short} is a step of the {flow.name} workflow, which this publisher does not "
                f"check; send it with `jcu assist`"
            )
        message = WorkflowMessage(
            flow.name,
            flow.thread_of(record),
            mid,
            self.participant,
            short,
            record,
            labels,
            tuple(recipients),
            utc_now(),
        )
        try:
            check.outbound(message)
        except Rejected as exc:
            refusal = AuditRecord.from_rejection(
                exc,
                organisation=self.participant,
                message_id=mid,
                labels=self._avro_labels(labels),
                bundle_hash=self._ctx.policy.bundle_hash,
                action="publish",
                thread=message.thread,
            )
            raise _Refused(exc, refusal) from None
        return check, message

    def _count(self, metrics: Metrics, results: Sequence[PublishResult]) -> None:
        """Metrics for a batch: counted first, then one increment per label value."""
        published: Counter[str] = Counter()
        denied: Counter[str] = Counter()
        for result in results:
            published.update(c.community for c in result.copies)
            denied.update(
                (d.rules[0] if d.rules else "default-deny")
                for d in result.decisions
                if d.decision == "deny"
            )
        for community, n in published.items():
            metrics.published.labels(community).inc(n)
        for rule, n in denied.items():
            metrics.denied.labels(rule).inc(n)

    async def retract(self, message_id: str, reason: str = "") -> PublishResult:
        """Withdraw a message this participant sent: every recipient's sink is told."""
        sent = self._sent.get(message_id)
        if sent is None:
            raise ConfigError(
                f"{self.participant} has no record of sending message {message_id} from this host"
            )
        flow = self._ctx.envelope.store.workflow(sent.payload_type)
        if flow is not None:
            raise ConfigError(
                f"message {message_id} is a {sent.payload_type}, a step of the {flow.name} "
                "workflow: it is withdrawn by a later step (`jcu assist`), not retracted"
            )
        if self._producer is None:
            raise ConfigError("publisher is not started")
        retraction = {
            "id": str(uuid.uuid4()),
            "message_id": message_id,
            "reason": reason,
            "retracted": utc_now(),
        }
        sealed = [
            self._sealer.seal(
                "Retraction",
                retraction,
                recipients=c.recipients,
                topic=c.topic,
                labels=sent.labels,
                target_community=c.community,
            )
            for c in sent.copies
        ]
        metas = []
        for c, message in zip(sent.copies, sealed, strict=True):
            try:
                future = await self._producer.send(
                    c.topic, value=message.data, key=message_id.encode()
                )
                metas.append(await future)
            except Exception as exc:  # recorded as not sent, then raised
                metas.append(exc)
        outcomes = [
            CopyOutcome(
                c.community,
                c.topic,
                c.recipients,
                partition=None if isinstance(m, BaseException) else m.partition,
                offset=None if isinstance(m, BaseException) else m.offset,
                error=KAFKA_ERROR if isinstance(m, BaseException) else None,
                reason=f"Kafka did not take it: {m}" if isinstance(m, BaseException) else "",
            )
            for c, m in zip(sent.copies, metas, strict=True)
        ]
        await self._audit.append_many(
            retraction_sent(message_id, str(retraction["id"]), outcomes, reason=reason)
        )
        failures = [m for m in metas if isinstance(m, BaseException)]
        if failures:
            raise KafkaUnavailable(
                f"the retraction of {message_id} was not sent to every copy's topic "
                f"(recorded in the audit log): {failures[0]}"
            )
        self._sent.mark_retracted(message_id)
        copies = tuple(
            CommunityCopy(c.community, c.topic, m.partition, m.offset, c.recipients)
            for c, m in zip(sent.copies, metas, strict=True)
        )
        return PublishResult(str(retraction["id"]), "Retraction", sent.labels, copies, ())
