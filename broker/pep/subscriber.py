"""The receiving enforcement point: verify, decrypt, re-check, deliver once, commit.

One participant's consumer group reads its community's topics. Per record:

  1. read the (unverified) header; records not addressed to us are skipped
     (the community topic carries everyone's records; that is not an error);
  2. a record already in the delivery ledger at this very position is a
     redelivery after a crash and is dropped quietly;
  3. open it (signature, key validity, topic binding, replay, expiry, unwrap,
     decrypt, the clear TLP and exercise flag against the encrypted labels: see
     broker.envelope.opener);
  4. re-check placement and the policy for receipt on the decrypted labels
     (audited on `<participant>/receive`; the clear header has no others);
     a workflow's message (an assistance step) must also pass its workflow's
     check: the state machine (`broker.pep.workflow`);
  5. hand it to the sink and record it in the ledger;
  6. once the sink has the batch durably: send its signed Receipts (one per sender: the
     ids it delivered of that sender, under a Merkle root; broker.pep.receipts), audit
     its decisions, commit the ledger, then the offsets. This settling of one batch runs
     while the next is fetched and opened (a pipeline of depth 2: `_settle_soon`); the
     next batch's own settling waits for it, so commits keep their order.

Refused records go to `jcu.dlq` with the reason, are audited, and never stop
the consumer. A sink that cannot take a delivery (its receiver down, its disk
full) is not the record's fault: the batch is held and the sink retried with
bounded exponential backoff (said at once, then periodically) until it takes
it, or, past `sink_give_up_after`, the subscriber stops without committing
(`SinkGaveUp`): the batch comes again on the next run, nothing is dead-lettered.
Processing is sequential per batch with a bounded batch size, and at most one batch
settles while the next is opened, so a slow sink slows consumption instead of growing
memory.

Every receiving decision (and every retraction applied) is audited once per
delivery, whatever the crashes: each names the position it decided (topic,
partition, offset, consumer group), the batch's decisions are audited before
the delivery ledger commits, and a restart reads its audit log back from the
ledger's audit mark, so the records of a redelivered batch that were already
decided are recognised and not decided again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker import faults
from broker.audit import AuditLog, AuditMark, AuditRecord
from broker.audit.acts import replay as replay_act
from broker.audit.acts import retraction_applied
from broker.audit.record import new_decision_ids
from broker.clock import utc_now
from broker.envelope import (
    MAX_VALIDITY,
    EnvelopeHeader,
    EnvelopeReader,
    Labels,
    Opener,
    Sealer,
)
from broker.envelope.labels import TLP_LEVELS, AvroLabelsCache
from broker.errors import (
    CompressionBomb,
    ConfigError,
    JcuError,
    MalformedRecord,
    Rejected,
    SinkGaveUp,
    SinkUnavailable,
    StateError,
    Unauthorised,
    UnknownSchema,
)
from broker.kafka.clients import HouseClients, KafkaClients, start_client
from broker.kafka.decompression import DEFAULT_LIMIT as DEFAULT_DECOMPRESSION_LIMIT
from broker.kafka.decompression import limit_decompression
from broker.kafka.raw_fetch import batch_at, fetch_raw
from broker.kafka.raw_fetch import records as raw_records
from broker.kafka.scan import partitions
from broker.kafka.stamps import appended_at
from broker.kafka.topics import DLQ, community_topic
from broker.lifecycle import Service, start_together, stop_together, to_the_end
from broker.logs import get_logger
from broker.pep.checks import (
    Received,
    ReceivePolicy,
    arrival_checks,
    policy_decider,
    receipt_checks,
)
from broker.pep.context import PepContext
from broker.pep.control import CrisisBoard
from broker.pep.ledger import DeliveryLedger, Position, Staged
from broker.pep.receipts import batch_receipt
from broker.pep.registry_audit import RegistryAudit
from broker.pep.sink import Delivery, Retracted, Sink, SinkRetry
from broker.pep.state_feeds import StateFeeds
from broker.pep.workflow import Workflows
from broker.trust.feed import RegistryFeed

if TYPE_CHECKING:
    from broker.metrics import Metrics


DATA_STREAMS: tuple[str, ...] = ("indicators", "incidents", "reports", "assistance")
#: Refused records larger than this go to the DLQ as digest and size only (a hostile
#: record sized at the broker's limit must not make its own dead letter too large).
DLQ_MAX_COPY = 512 * 1024
#: How often the ledger forgets expired deliveries, and how long past its expiry a
#: delivery is still remembered (so that a late retraction still finds its message).
LEDGER_PRUNE_EVERY = timedelta(hours=1)
LEDGER_GRACE = MAX_VALIDITY
#: Milliseconds a draining run's poll waits for records before it looks whether it has
#: reached the ends it drains to (`Subscriber.run(until_idle=True)`).
DRAIN_POLL_MS = 100
_log = get_logger(__name__)


def sink_name(sink: Any) -> str:
    """How logs and errors name a sink: its shown URL or path, else its class."""
    for attribute in ("shown", "directory", "path"):
        value = getattr(sink, attribute, None)
        if value is not None:
            return str(value)
    return type(sink).__name__


def _ledger_first(subscriber: Subscriber) -> Any:
    """A rebalance listener that starts assigned partitions from the subscriber's ledger."""
    from aiokafka.abc import ConsumerRebalanceListener

    class LedgerFirst(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            """The batch settling meanwhile commits its offsets before they go."""
            await subscriber._settling_done()

        async def on_partitions_assigned(self, assigned: Any) -> None:
            await subscriber._settling_done()
            await subscriber._start_from_ledger(assigned)

    return LedgerFirst()


def ledger_path(home: Path, participant: str, group: str) -> Path:
    """Where the delivery ledger of `participant`'s channel (consumer group) `group` lives."""
    return home / "ledger" / participant / f"{group}.sqlite"


def receive_side(participant: str, group: str | None) -> str:
    """The enforcement point side a channel audits on: `receive` for the default channel
    (`<participant>.subscriber`), `receive/<channel>` for any other, so that several
    channels of one participant run at once, each with its own log and state."""
    if group is None or group == default_group(participant):
        return "receive"
    channel = group.removeprefix(f"{participant}.")
    return f"receive/{channel}"


def default_group(participant: str, channel: str = "subscriber") -> str:
    """The consumer group of one of `participant`'s delivery channels: prefixed with its id,
    the only groups the Kafka ACLs let it join and commit (docs/deployment.md)."""
    return f"{participant}.{channel}"


def _receipt_batches(
    due: Iterable[tuple[EnvelopeHeader, Labels, datetime]],
) -> dict[tuple[str, str, str | None], list[tuple[EnvelopeHeader, Labels, datetime]]]:
    """A batch's deliveries by whom a receipt goes to: (sender, its community, the exercise
    or None); exercise traffic's receipts go on the exercise topic, so apart."""
    out: dict[tuple[str, str, str | None], list[tuple[EnvelopeHeader, Labels, datetime]]] = {}
    for header, labels, when in due:
        key = (header.sender, header.origin_community, labels.exercise)
        out.setdefault(key, []).append((header, labels, when))
    return out


def _receipt_labels(labels: Sequence[Labels]) -> Labels:
    """A receipt's labels: the strictest TLP of the messages it covers, their exercise, and
    their incident when they share one."""
    tlp = max((lab.tlp for lab in labels), key=TLP_LEVELS.index)
    incidents = {lab.incident for lab in labels}
    incident = incidents.pop() if len(incidents) == 1 else None
    return Labels.of(tlp, exercise=labels[0].exercise, incident=incident)


@dataclass(frozen=True, slots=True)
class HeldRecord:
    """A record as the subscriber handles it, from somewhere other than its consumer (a
    dead letter being replayed): where it was, its key and value, its broker append time."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None
    timestamp_type: int = 1  # LogAppendTime: the broker's clock, not the sender's
    #: the reason it was dead-lettered for, when it is a dead letter replayed
    refused_as: str = ""


@dataclass(frozen=True, slots=True)
class _Batch:
    """A record batch refused whole, where a record would be (for `_reject`)."""

    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True, slots=True)
class _Settling:
    """What a batch leaves to do once the sink holds it durably (`Subscriber._finish`)."""

    offsets: dict[Any, int]
    receipts_due: list[tuple[EnvelopeHeader, Labels, datetime]]
    #: dead letters on their way
    pending: list[asyncio.Future[Any]]
    audited: list[AuditRecord]
    staged: Staged


@dataclass
class SubscriberStats:
    delivered: int = 0
    retracted: int = 0
    skipped: int = 0
    duplicates: int = 0
    #: times a record batch past the decompression limit was met (each dead-lettered)
    bombs: int = 0
    #: records fetched from before the ledger's settled position (decided already: passed by)
    settled_before: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "retracted": self.retracted,
            "skipped_not_addressed": self.skipped,
            "compression_bombs": self.bombs,
            "duplicates": self.duplicates,
            "settled_before": self.settled_before,
            "rejected": dict(self.rejected),
        }


class Subscriber(Service):
    """Receives as one participant into a `Sink`. Use `async with` or start()/stop()."""

    def __init__(
        self,
        participant: str,
        ctx: PepContext,
        sink: Sink,
        *,
        group_id: str | None = None,
        streams: Iterable[str] = DATA_STREAMS,
        audit: AuditLog | None = None,
        crisis: CrisisBoard | None = None,
        registry_feed: RegistryFeed | None = None,
        metrics: Metrics | None = None,
        receipts: bool = True,
        max_batch: int = 500,
        workflows: Workflows | None = None,
        max_decompressed: int = DEFAULT_DECOMPRESSION_LIMIT,
        log_registry: bool = True,
        sink_retry: SinkRetry | None = None,
        rebuild_ledger: bool = False,
        arrival: ReceivePolicy | None = None,
        receipt: ReceivePolicy | None = None,
        clients: KafkaClients | None = None,
        ledger: DeliveryLedger | None = None,
    ) -> None:
        """`arrival`, `receipt`: the checks every opened record, and every message to deliver,
        must pass (broker.pep.checks; by default `arrival_checks()`, `receipt_checks(...)`).
        `clients`: where the consumer and producer come from (default: `HouseClients` of the
        node's connection; this subscriber starts and stops them). `audit`, `ledger`: the
        audit log and delivery ledger of this channel instead of the node's own (`ledger` is
        then the caller's to close)."""
        me = ctx.registry.get(participant)
        self.participant = participant
        self._ctx = ctx
        self._sink = sink
        self._group = group_id or default_group(participant)
        if not self._group.startswith(f"{participant}."):
            raise ConfigError(
                f"consumer group {self._group!r} is not {participant}'s: the Kafka ACLs let "
                f"{participant} use only groups named {participant}.<something>"
            )
        self._topics = [community_topic(me.community, s) for s in streams]
        if me.exercises:
            self._topics += [community_topic(me.community, s, exercise=True) for s in streams]
        # One ledger per consumer group: each group is its own delivery channel into its sink.
        self._owns_ledger = ledger is None
        self._ledger = (
            ledger
            if ledger is not None
            else DeliveryLedger(ledger_path(ctx.settings.home, participant, self._group))
        )
        self._clients = clients if clients is not None else HouseClients(ctx.settings.kafka)
        self._rebuild_ledger = rebuild_ledger
        self._sink_retry = sink_retry or SinkRetry()
        #: The batch's deliveries whose receipts go once the sink has them durably.
        self._receipts_due: list[tuple[EnvelopeHeader, Labels, datetime]] = []
        self._opener: Opener = ctx.envelope.opener(participant, replay_guard=self._ledger)
        # Decodes a sender batch's envelopes without fastavro for each (see _reader).
        self._reader = EnvelopeReader(ctx.envelope.store)
        self._sealer: Sealer = ctx.envelope.sealer(participant)
        self._audit = audit if audit is not None else ctx.audit_log(participant, "receive")
        self._feeds = StateFeeds(ctx, crisis=crisis, registry=registry_feed)
        self._metrics = metrics  # None: nothing counted (no prometheus_client to import)
        # Per-payload-type counter children: `.labels()` is a lookup per call otherwise.
        self._delivered_counters: dict[str, Any] = {}
        self._receipts = receipts
        self._max_batch = max_batch
        self._max_decompressed = max_decompressed
        self._consumer: Any = None
        self._producer: Any = None
        self._stop = asyncio.Event()
        self._pending: list[asyncio.Future[Any]] = []
        self._audited: list[AuditRecord] = []  # the batch's decisions, written in one go
        self._decision_ids: Iterator[str] = iter(())  # drawn 256 at a time
        self.stats = SubscriberStats()
        self._avro_labels = AvroLabelsCache()
        self._pruned: datetime | None = None
        self._workflows: Workflows = workflows or {}
        self._arrival = arrival if arrival is not None else arrival_checks()
        self._receipt = (
            receipt
            if receipt is not None
            else receipt_checks(
                participant,
                registry=lambda: ctx.registry,
                store=ctx.envelope.store,
                workflows=self._workflows,
            )
        )
        self._decide = policy_decider(
            ctx.policy, participant, lambda: self._feeds.crisis.active_incidents()
        )
        # The registry snapshots taking effect here, in this log (unless whoever shares the
        # log with others logs them, once: `log_registry=False`).
        self._registry_audit = (
            RegistryAudit(ctx.envelope.trusted, self._audit) if log_registry else None
        )
        #: Positions a crashed run already decided and audited (`_recover`): not again.
        self._recovered: set[Position] = set()
        #: the audit mark the ledger holds (`_commit_ledger`)
        self._committed_mark: AuditMark | None = None
        #: Replaying dead letters (`replay`): refusals are reported, not dead-lettered again.
        self._replaying = False
        self.replay_refusals: list[tuple[str, str, str]] = []
        #: The previous batch, settling while this one is opened (`_settle_soon`).
        self._settling: asyncio.Task[None] | None = None

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self._topics)

    async def start(self, *, consume: bool = True) -> None:
        """Start; without `consume`, everything but the consumer (for `replay`)."""
        # A batch that would decompress past this is refused whole (`_past_the_bomb`).
        limit_decompression(self._max_decompressed)
        try:
            # Independent of each other, so at once: each is its own round trips to Kafka.
            # The signing key first: a wrong passphrase is this start's error, whatever Kafka.
            starts = [
                self._open_signing_key,
                self._feeds.start,
                self._audit.start,
                self._start_producer,
            ]
            if consume:
                starts.append(self._start_consumer)
            await start_together(*starts)
            if self._registry_audit is not None:
                await self._registry_audit.start()
            await self._recover()
            if not consume:
                return
            await self._check_lost_ledger()
            # The ledger, not the group's committed offset, says where to start (ledger.py).
            self._consumer.subscribe(self._topics, listener=_ledger_first(self))
        except BaseException:
            await to_the_end(self.stop())
            raise

    async def _open_signing_key(self) -> None:
        """Open the key (the keystore may still be unlocking: `Keystore.unlock_ahead`) in a
        thread, so the connections are made meanwhile."""
        await asyncio.to_thread(self._ctx.signing_key, self.participant)

    async def _start_producer(self) -> None:
        kafka = self._ctx.settings.kafka
        producer = self._clients.producer()
        await start_client(producer, kafka)
        self._producer = producer

    async def _start_consumer(self) -> None:
        kafka = self._ctx.settings.kafka
        client = self._clients.consumer(
            group_id=self._group,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_bytes=16 * 1024 * 1024,
            max_poll_records=self._max_batch,
        )
        await start_client(client, kafka)
        self._consumer = client

    async def stop(self) -> None:
        """Finish nothing new, close the consumer, sign a final audit checkpoint. A sink
        that is down cannot stop this (its close is logged, not raised: what it did not take
        was not committed). A batch still settling (its run was cancelled) finishes first;
        its error, if any, is raised once the rest is stopped."""
        failed: BaseException | None = None
        try:
            await self._settled()
        except Exception as exc:
            failed = exc
        if self._registry_audit is not None:
            self._registry_audit.stop()
        # The state feeds only read: they stop while the rest finishes (each client's stop
        # may wait out a long poll).
        await stop_together(self._stop_kafka, self._feeds.stop)
        try:
            await self._sink.close()
        except (SinkUnavailable, OSError) as exc:
            _log.warning("sink not closed cleanly", sink=sink_name(self._sink), error=str(exc))
        if self._owns_ledger:
            self._ledger.close()
        if failed is not None:
            raise failed

    async def _stop_kafka(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await self._audit.stop()

    async def _check_lost_ledger(self) -> None:
        """A ledger that did not exist before this run, for a group that has committed
        offsets, was lost: deciding again from the committed offsets could audit and
        receipt deliveries twice, so that needs the operator's word (`rebuild_ledger`)."""
        if self._ledger.existed or self._rebuild_ledger:
            return
        for tp in await partitions(self._consumer, self._topics):
            if await self._consumer.committed(tp) is not None:
                raise StateError(
                    f"the delivery ledger {self._ledger.path} is missing but consumer group "
                    f"{self._group} has committed offsets: it was lost or moved. Put it back, "
                    "or run again with --rebuild-ledger to start a new one from the committed "
                    "offsets (what came after them is delivered again)"
                )

    def request_stop(self) -> None:
        """Stop after the batch in hand is delivered and committed (SIGTERM does this)."""
        self._stop.set()

    async def run(
        self, *, until_idle: bool = False, idle_timeout_ms: int = 1000
    ) -> SubscriberStats:
        """Consume until `request_stop()`, or, with `until_idle`, until the end of every topic
        as it was when our partitions were assigned."""
        _log.info("polling", participant=self.participant, group=self._group, topics=self._topics)
        try:
            await self._consume(until_idle, idle_timeout_ms)
        except BaseException:
            # Stopped by an error (or cancelled): the batch settling meanwhile is durable in
            # the sink, so it may finish; if it fails too, that is said, and this error raised.
            await self._settled_after_error()
            raise
        await self._settled()
        return self.stats

    async def _consume(self, until_idle: bool, idle_timeout_ms: int) -> None:
        from aiokafka.structs import TopicPartition

        targets: dict[TopicPartition, int] | None = None
        # Draining (`until_idle`), an empty poll ends once caught up, so it need not wait
        # out the whole idle timeout: `jcu subscribe --once` with nothing new exits sooner.
        poll_ms = min(idle_timeout_ms, DRAIN_POLL_MS) if until_idle else idle_timeout_ms
        while not self._stop.is_set():
            # A node whose rules are no longer the approved ones delivers nothing more.
            self._ctx.check_trusted()
            if self._settling is not None and self._settling.done():
                await self._settled()  # its error, if it failed, stops this run now
            try:
                batch = await self._consumer.getmany(
                    timeout_ms=poll_ms, max_records=self._max_batch
                )
            except CompressionBomb as bomb:
                await self._settled()
                await self._past_the_bomb(bomb)
                continue
            offsets: dict[TopicPartition, int] = {}
            self._ledger.prefetch(
                r.key.decode(errors="replace")
                for records in batch.values()
                for r in records
                if r.key is not None
            )
            for tp, records in batch.items():
                for r in self._past_settled(tp, records):
                    await self._handle(r)
                    offsets[tp] = r.offset + 1
            await self._settle_soon(offsets)
            if until_idle:
                assigned = self._consumer.assignment()
                if not assigned:
                    continue
                if targets is None or set(targets) != set(assigned):
                    targets = await self._consumer.end_offsets(list(assigned))
                positions = {tp: await self._consumer.position(tp) for tp in assigned}
                if all(positions[tp] >= end for tp, end in targets.items()):
                    break

    async def replay(self, records: Iterable[HeldRecord]) -> SubscriberStats:
        """Check and deliver dead letters again, each exactly as a fresh delivery at the
        position it came from (signature, key validity against its append time, replay
        window, placement, policy, registry); audited in this subscriber's log, and a
        refusal reported in `replay_refusals` instead of dead-lettered again. Needs
        `start(consume=False)`."""
        self._replaying = True
        try:
            for r in records:
                # That it was replayed, then what the replay decided (docs/audit.md).
                self._audited.append(
                    dataclasses.replace(
                        replay_act(
                            self.participant,
                            (r.key or b"").decode(errors="replace"),
                            source=f"{r.topic}:{r.partition}:{r.offset}",
                            reason=r.refused_as or "unknown",
                        ),
                        policy_bundle_hash=self._ctx.policy.bundle_hash,
                    )
                )
                await self._handle(r)
            await self._settle({})
        finally:
            self._replaying = False
        return self.stats

    async def _recover(self) -> None:
        """Read back what a crashed run audited after its last ledger commit: those
        positions were decided (delivered, refused or retracted) and must not be again."""
        mark = self._ledger.audit_mark()
        point = self._ledger.audit_point() or f"{self.participant}/receive"
        if mark is not None and point != self._audit.enforcement_point:
            # The channel audited on another log before (its own point is new): nothing of
            # this log was decided for it, so there is nothing to read back.
            _log.info(
                "channel now audited on its own enforcement point",
                group=self._group,
                before=point,
                now=self._audit.enforcement_point,
            )
            mark = None
        if mark is None:  # a new ledger: nothing of it was ever decided
            self._commit_ledger(None, self._audit.mark())
            return
        leaves = await self._audit.leaves_since(AuditMark(*mark))
        recovered = 0
        for leaf in leaves:
            for rec in leaf.records:
                d = rec.details
                if d.get("group") != self._group or rec.action not in ("receive", "retract"):
                    continue
                try:
                    where = Position(d["topic"], int(d["partition"]), int(d["offset"]))
                except (KeyError, ValueError):
                    continue
                self._recovered.add(where)
                recovered += 1
                envelope = d.get("envelope", rec.message_id)
                if d.get("sender") and d.get("expires") and rec.decision != "reject":
                    expires = datetime.fromisoformat(d["expires"])
                    self._ledger.stage(envelope, d["sender"], expires, where)
                if rec.action == "retract":
                    self._ledger.mark_retracted(rec.message_id)
        self._commit_ledger(None, self._audit.mark())
        if recovered:
            _log.warning(
                "decisions of a stopped run recovered from the audit log",
                participant=self.participant,
                group=self._group,
                positions=recovered,
            )

    def _commit_ledger(
        self,
        settled: dict[tuple[str, int], int] | None,
        mark: AuditMark | None,
        staged: Staged | None = None,
    ) -> None:
        """Commit the ledger (the deliveries `staged`, or all staged); then the audit log may
        forget, past its checkpoints, the leaves before `mark` (`_recover` never asks for
        them again)."""
        self._ledger.commit(
            settled,
            audit_mark=(mark.index, mark.offset) if mark else None,
            audit_point=self._audit.enforcement_point,
            staged=staged,
        )
        if mark is not None:
            self._committed_mark = mark
            self._audit.hold(f"ledger {self._group}", mark)

    async def _settle(self, offsets: dict[Any, int]) -> None:
        """Settle the batch in hand now, and commit `offsets` (`_settle_soon`, waited for)."""
        await self._settle_soon(offsets)
        await self._settled()

    async def _settle_soon(self, offsets: dict[Any, int]) -> None:
        """Make the batch in hand durable in the sink (its latency ends there), then leave
        the rest of its settling (`_finish`) running while the next batch is fetched and
        opened: once the batch before has settled, so that at most one batch settles at a
        time and each commit follows the one before."""
        await self._hold("the batch", self._sink.flush)
        work = _Settling(
            offsets=offsets,
            receipts_due=self._receipts_due,
            pending=self._pending,
            audited=self._audited,
            staged=self._ledger.set_aside(),
        )
        self._receipts_due, self._pending, self._audited = [], [], []
        await self._settled()
        self._settling = asyncio.create_task(self._finish(work))

    async def _settled(self) -> None:
        """Wait for the batch settling, if any; its error is raised here. Cancelling the
        waiter does not cancel the settling (`stop` waits for it then)."""
        task = self._settling
        if task is None:
            return
        try:
            await asyncio.shield(task)
        finally:
            if task.done():
                self._settling = None

    async def _settling_done(self) -> None:
        """Wait for the batch settling to end, raising nothing (its error stays for `run`)."""
        if self._settling is not None:
            await asyncio.wait([self._settling])

    async def _settled_after_error(self) -> None:
        """`_settled` while another error stops the run: this one's is logged, not raised."""
        try:
            await self._settled()
        except Exception as exc:
            _log.error(
                "the batch before could not be settled either",
                participant=self.participant,
                group=self._group,
                error=str(exc),
            )

    async def _finish(self, work: _Settling) -> None:
        """Settle a batch the sink holds durably before its offsets are committed: dead
        letters and receipts, then the audit records (with the receipts' outcome), then the
        ledger (with the positions the batch settled, and the audit log's mark), then the
        offsets."""
        # Receipts only for what the sink now holds durably: a batch the sink never took is
        # delivered again, and its receipts go then, once.
        receipts = [
            self._send_receipt(sender, community, exercise, deliveries)
            for (sender, community, exercise), deliveries in _receipt_batches(
                work.receipts_due
            ).items()
        ]
        outcomes: dict[str, dict[str, str]] = {}
        if work.pending or receipts:
            done = await asyncio.gather(*work.pending, *receipts)  # dead letters, receipts
            for outcome in done[len(work.pending) :]:
                outcomes.update(outcome)
        audited = work.audited
        if audited:
            await self._audit.append_many(
                [
                    dataclasses.replace(r, details={**r.details, **outcomes[r.message_id]})
                    if r.message_id in outcomes and r.decision != "reject"
                    else r
                    for r in audited
                ]
            )
            faults.point("subscriber.after-audit")
        # Only now: a crash before this line redelivers the batch (from the ledger's settled
        # positions), and `_recover` knows from the audit log's journal which of its records
        # were decided, so none is audited twice.
        mark = self._audit.mark()
        offsets = work.offsets
        self._commit_ledger(
            {(tp.topic, tp.partition): off for tp, off in offsets.items()},
            # moved on also when others wrote to the log (a desk's publisher, the registry's
            # changes): the journal then keeps nothing for this ledger that it will not ask
            mark if audited or mark != self._committed_mark else None,
            work.staged,
        )
        self._prune_ledger(utc_now())
        if offsets:
            await self._consumer.commit(offsets)
            for tp, next_offset in offsets.items():
                end = self._consumer.highwater(tp)
                if end is not None and self._metrics is not None:
                    self._metrics.lag.labels(tp.topic, str(tp.partition)).set(end - next_offset)

    async def _past_the_bomb(self, bomb: CompressionBomb) -> None:
        """aiokafka met a batch that decompresses past the limit: it raised out of getmany,
        and may have dropped what it had drained from other partitions. So every assigned
        partition is read by hand from where the ledger settled it to its end as of now:
        each record handled as usual, each such batch dead-lettered and audited whole,
        positions settled and committed; then the consumer goes on from there (and, the
        positions being committed, so does a restarted one)."""
        self.stats.bombs += 1
        _log.warning(
            "record batch past the decompression limit: reading past it",
            participant=self.participant,
            error=str(bomb),
        )
        for tp in sorted(self._consumer.assignment()):
            position = await self._settled_or_committed(tp)
            while True:
                fetch = await fetch_raw(self._consumer, tp, position)
                if position >= fetch.highwater or not fetch.records:
                    break
                pending = raw_records(fetch)
                offsets: dict[Any, int] = {}
                try:
                    for r in pending:
                        await self._handle(r)
                        offsets[tp] = r.offset + 1
                    after = pending.next_fetch_offset
                except CompressionBomb as exc:
                    at = batch_at(fetch.records, pending.next_fetch_offset)
                    if at is None:
                        raise
                    base, last, data = at
                    self._reject(exc, _Batch(tp.topic, tp.partition, base, data), None, None)
                    after = last + 1
                if after <= position:
                    break  # nothing more to read now (an open transaction, say)
                offsets[tp] = after
                await self._settle(offsets)
                position = after
            self._consumer.seek(tp, position)

    def _past_settled(self, tp: Any, records: list[Any]) -> list[Any]:
        """The records of a fetch at or after the ledger's settled position. Those before it
        were decided by an earlier batch or run: never again. (A fetch begun from the group's
        committed offset before `_start_from_ledger`'s seek took effect can bring them.)"""
        floor = self._ledger.settled(tp.topic, tp.partition)
        if floor is None or not records or records[0].offset >= floor:
            return records
        kept = [r for r in records if r.offset >= floor]
        self.stats.settled_before += len(records) - len(kept)
        if not kept:
            self._consumer.seek(tp, floor)
        return kept

    async def _settled_or_committed(self, tp: Any) -> int:
        settled = self._ledger.settled(tp.topic, tp.partition)
        if settled is not None:
            return settled
        committed = await self._consumer.committed(tp)
        if committed is not None:
            return int(committed)
        return int((await self._consumer.beginning_offsets([tp]))[tp])

    async def _start_from_ledger(self, assigned: Iterable[Any]) -> None:
        """On assignment, start each partition where the ledger settled it, whatever the
        group's committed offset says (defence in depth against a skipped range)."""
        tps = list(assigned)
        beginnings: dict[Any, int] | None = None
        for tp in tps:
            settled = self._ledger.settled(tp.topic, tp.partition)
            committed = await self._consumer.committed(tp)
            if settled is None:
                if committed is None:
                    continue  # a new channel: from the beginning (auto_offset_reset)
                if beginnings is None:
                    beginnings = await self._consumer.beginning_offsets(tps)
                settled = beginnings[tp]
            if committed == settled:
                continue
            if committed is not None and committed > settled:
                if self._metrics is not None:
                    self._metrics.offsets_ahead.labels(tp.topic).inc()
                _log.warning(
                    "committed offset ahead of the ledger: starting from the ledger's position",
                    participant=self.participant,
                    group=self._group,
                    topic=tp.topic,
                    partition=tp.partition,
                    committed=committed,
                    ledger=settled,
                )
            else:
                _log.info(
                    "starting from the ledger's position",
                    participant=self.participant,
                    topic=tp.topic,
                    partition=tp.partition,
                    committed=committed,
                    ledger=settled,
                )
            self._consumer.seek(tp, settled)

    def _prune_ledger(self, now: datetime) -> int:
        """Now and then, forget deliveries long expired: the ledger stays the size of the
        traffic of the last weeks instead of growing for ever. A replay of a forgotten
        message is refused anyway, as expired."""
        if self._pruned is not None and now - self._pruned < LEDGER_PRUNE_EVERY:
            return 0
        self._pruned = now
        forgotten = self._ledger.prune(now - LEDGER_GRACE)
        if forgotten:
            _log.info("ledger pruned", participant=self.participant, forgotten=forgotten)
        return forgotten

    # -- one record ------------------------------------------------------------

    def _where(self, r: Any, header: EnvelopeHeader | None = None) -> dict[str, str]:
        """What an audit record of this position says about where it was decided."""
        details = {
            "topic": r.topic,
            "partition": str(r.partition),
            "offset": str(r.offset),
            "group": self._group,
        }
        if header is not None:
            details["sender"] = header.sender
            details["envelope"] = header.message_id
            details["expires"] = header.expires.isoformat()
        return details

    async def _handle(self, r: Any) -> None:
        t0 = time.perf_counter()
        where = Position(r.topic, r.partition, r.offset)
        if self._recovered and where in self._recovered:
            self.stats.duplicates += 1  # decided and audited by a run that stopped
            if self._metrics is not None:
                self._metrics.duplicates.inc()
            return
        value: bytes = r.value or b""
        try:
            envelope = self._reader.decode(value)
        except (MalformedRecord, UnknownSchema) as exc:
            self._reject(exc, r, None, None)
            return
        header = envelope.header
        if self.participant not in header.recipient_ids:
            self.stats.skipped += 1
            return
        if self._ledger.position(header.message_id) == where:
            self.stats.duplicates += 1
            if self._metrics is not None:
                self._metrics.duplicates.inc()
            return
        # Until it is opened, a record has no labels beyond its clear TLP (format 2) or
        # the unverified ones in its clear header (format 1): those are audited, if any.
        labels: Labels | None = header.labels
        thread: str | None = None
        try:
            appended = appended_at(r)
            opened = self._opener.open(value, topic=r.topic, decoded=envelope, appended=appended)
            labels = opened.labels
            short = opened.payload_type.rpartition(".")[2]
            flow = self._ctx.envelope.store.workflow(short)
            thread = flow.thread_of(opened.record) if flow is not None else None
            received = Received(
                r.topic,
                r.key,
                header,
                labels,
                short,
                opened.record,
                workflow=flow.name if flow is not None else None,
                thread=thread,
                decide=self._decide,
            )
            # The record key places a message on its partition (keyed by its own id, a
            # retraction by the retracted id, a workflow's message by its thread: all taken
            # from the signed payload), and its labels and type its topic (broker.pep.checks).
            self._arrival.verify(received)
            if short == "Retraction":
                await self._retract(opened.header, labels, opened.record)
                self._ledger.stage(header.message_id, header.sender, header.expires, where)
                self._audited.append(
                    dataclasses.replace(
                        retraction_applied(
                            self.participant,
                            str(opened.record["message_id"]),
                            header.sender,
                            topic=r.topic,
                            partition=r.partition,
                            offset=r.offset,
                        ),
                        details=self._where(r, header),
                        labels=self._avro_labels(labels),
                        policy_bundle_hash=self._ctx.policy.bundle_hash,
                    )
                )
                return
            # The policy for receipt on the opened labels, and the workflow's step.
            self._receipt.verify(received)
            decision = received.decision
        except Rejected as exc:
            self._reject(exc, r, header, labels, thread)
            return
        now = utc_now()
        delivery = Delivery(
            participant=self.participant,
            message_id=header.message_id,
            sender=header.sender,
            payload_type=short,
            record=opened.record,
            labels=labels,
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            created=header.created,
            received=now,
            redacted_fields=labels.redacted_fields,
            obligations=decision.obligations,
        )
        # A sink that cannot take it holds the batch (never a dead letter: the record is good).
        await self._hold(f"message {header.message_id}", lambda: self._sink.deliver(delivery))
        self._audited.append(
            AuditRecord.from_decision(
                decision,
                action="receive",
                message_id=header.message_id,
                content_hash=self._audit.content_hash_of_digest(opened.content_hash),
                labels=self._avro_labels(labels),
                bundle_hash=self._ctx.policy.bundle_hash,
                decision_id=self._next_decision_id(),
                thread=thread,
                details=self._where(r, header),
            )
        )
        self._ledger.stage(header.message_id, header.sender, header.expires, where)
        self.stats.delivered += 1
        # In the sink, not yet durable, audited or in the ledger: a kill (or a stop) here
        # at a chosen delivery is what the fault tests make (broker/faults.py).
        faults.point("subscriber.after-delivery", self.stats.delivered)
        if self._metrics is not None:
            counter = self._delivered_counters.get(short)
            if counter is None:
                counter = self._delivered_counters[short] = self._metrics.delivered.labels(short)
            counter.inc()
            self._metrics.deliver_seconds.observe(time.perf_counter() - t0)
        if self._receipts:
            self._receipts_due.append((header, labels, now))

    async def _hold(self, what: str, call: Callable[[], Awaitable[None]]) -> None:
        """`call()` until the sink takes it: a sink outage (SinkUnavailable, OSError) is
        retried with bounded exponential backoff, said at once and then every
        `tell_every` seconds; past `give_up_after`, or when asked to stop meanwhile,
        SinkGaveUp: the subscriber stops without committing the batch in hand. A sink that
        refuses the record itself (any other error) stops it at once, the same way."""
        retry = self._sink_retry
        started = time.monotonic()
        attempt = 0
        told: float | None = None
        while True:
            try:
                await call()
            except (SinkUnavailable, OSError) as exc:
                error = exc
            except (JcuError, ValueError, TypeError) as exc:
                # Not an outage: this sink cannot express the record. The record passed every
                # check, so it is not dead-lettered either: stop, say what, commit nothing.
                raise SinkGaveUp(
                    f"sink {sink_name(self._sink)} cannot take {what} ({exc}); stopped without "
                    "committing: use a sink that can (another --format), then run again"
                ) from None
            else:
                if told is not None:
                    _log.warning(
                        "sink available again: the held batch goes on",
                        participant=self.participant,
                        sink=sink_name(self._sink),
                        waited_s=round(time.monotonic() - started, 1),
                    )
                return
            attempt += 1
            waited = time.monotonic() - started
            if self._metrics is not None:
                self._metrics.sink_retries.inc()
            why = (error.strerror or str(error)) if isinstance(error, OSError) else str(error)
            if waited >= retry.give_up_after or self._stop.is_set():
                cause = "asked to stop" if self._stop.is_set() else f"gave up after {waited:.0f} s"
                raise SinkGaveUp(
                    f"sink {sink_name(self._sink)} did not take {what} ({why}); {cause} "
                    f"(--sink-give-up-after {retry.give_up_after:g}); stopped without "
                    "committing: fix the sink, then run again (the batch is delivered again)"
                ) from None
            if told is None or waited - told >= retry.tell_every:
                told = waited
                _log.warning(
                    "sink unavailable: holding the batch and retrying",
                    participant=self.participant,
                    sink=sink_name(self._sink),
                    what=what,
                    error=why,
                    attempt=attempt,
                    waited_s=round(waited, 1),
                    give_up_after_s=retry.give_up_after,
                )
            delay = min(retry.delay(attempt), max(retry.give_up_after - waited, 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)

    def _next_decision_id(self) -> str:
        """A fresh decision id, from a pool of 256 made with one random draw."""
        decision_id = next(self._decision_ids, None)
        if decision_id is None:
            self._decision_ids = iter(new_decision_ids(256))
            decision_id = next(self._decision_ids)
        return decision_id

    def _later(self, work: Any) -> None:
        """Start `work` now; the batch waits for it before committing its offsets."""
        self._pending.append(asyncio.ensure_future(work))

    async def _retract(
        self, header: EnvelopeHeader, labels: Labels, record: dict[str, Any]
    ) -> None:
        target = str(record["message_id"])
        original_sender = self._ledger.sender_of(target)
        if original_sender is None:
            raise Unauthorised(
                f"retraction of message {target}, which {self.participant} never received here"
            )
        if original_sender != header.sender:
            raise Unauthorised(
                f"{header.sender} may not retract message {target} sent by {original_sender}"
            )
        retraction = Retracted(
            participant=self.participant,
            message_id=target,
            sender=header.sender,
            reason=str(record.get("reason") or ""),
            retracted=record["retracted"],
            labels=labels,
        )
        await self._hold(f"the retraction of {target}", lambda: self._sink.retract(retraction))
        self._ledger.mark_retracted(target)
        self.stats.retracted += 1

    async def _send_receipt(
        self,
        sender: str,
        community: str,
        exercise: str | None,
        deliveries: list[tuple[EnvelopeHeader, Labels, datetime]],
    ) -> dict[str, dict[str, str]]:
        """One signed receipt for what this batch delivered of `sender`'s messages, sealed to
        it alone; its outcome, by message id, is audited with each of those deliveries."""
        ids = [header.message_id for header, _, _ in deliveries]
        receipt = batch_receipt(self.participant, [(h.message_id, w) for h, _, w in deliveries])
        topic = community_topic(community, "receipts", exercise=exercise is not None)
        from aiokafka.errors import KafkaError

        try:
            sealed = self._sealer.seal(
                "Receipt",
                receipt,
                recipients=[sender],
                topic=topic,
                labels=_receipt_labels([labels for _, labels, _ in deliveries]),
                target_community=community,
            )
            fut = await self._producer.send(topic, value=sealed.data, key=self.participant.encode())
            meta = await fut
            outcome = {"receipt": f"{topic}[{meta.partition}]@{meta.offset}"}
        except (JcuError, KafkaError) as exc:
            # A receipt is a courtesy to the sender: its failure never undoes a delivery.
            outcome = {"receipt": f"not sent: {exc}"[:300]}
            if self._metrics is not None:
                self._metrics.receipts_failed.inc()
            _log.warning(
                "receipt not sent",
                participant=self.participant,
                sender=sender,
                messages=len(ids),
                error=str(exc),
            )
        return dict.fromkeys(ids, outcome)

    def _reject(
        self,
        exc: JcuError,
        r: Any,
        header: EnvelopeHeader | None,
        labels: Labels | None,
        thread: str | None = None,
    ) -> None:
        """Count, log, dead-letter and audit a refused record; `labels` as far as known
        (the opened message's; None when it was not opened and carries none in the clear),
        `thread` if it was opened and is a workflow's message."""
        reason = exc.reason if isinstance(exc, Rejected) else "malformed"
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
        if self._metrics is not None:
            self._metrics.rejected.labels(reason).inc()
        # Unauthorised is only ever raised after the envelope opened: its sender is verified,
        # and it sealed for someone the policy does not allow. That is the sender's violation.
        violator = header.sender if isinstance(exc, Unauthorised) and header is not None else None
        if violator is not None and self._metrics is not None:
            self._metrics.policy_violations.labels(violator).inc()
        mid = (
            header.message_id
            if header is not None
            else f"unreadable:{r.topic}:{r.partition}:{r.offset}"
        )
        error = exc if isinstance(exc, Rejected) else MalformedRecord(str(exc))
        _log.warning(
            "record rejected",
            participant=self.participant,
            reason=reason,
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            message_id=mid,
        )
        headers = [
            ("jcu.reason", reason.encode()),
            ("jcu.error", str(exc)[:500].encode()),
            ("jcu.participant", self.participant.encode()),
            ("jcu.source", f"{r.topic}:{r.partition}:{r.offset}".encode()),
        ]
        if violator is not None:
            headers.append(("jcu.sender", violator.encode()))
        elif header is not None:  # as the clear header says: not verified
            headers.append(("jcu.claimed-sender", header.sender.encode()))
        # What a replay needs to check it again where it was (`jcu dlq replay`).
        headers.append(("jcu.group", self._group.encode()))
        if getattr(r, "key", None) is not None:
            headers.append(("jcu.key", bytes(r.key)))
        if getattr(r, "timestamp", None) is not None and getattr(r, "timestamp_type", 0) == 1:
            headers.append(("jcu.appended", str(r.timestamp).encode()))
        if self._replaying:
            # A replayed dead letter is in the DLQ already: refused again, it is audited
            # (below) and reported, not dead-lettered a second time.
            self.replay_refusals.append((mid, reason, str(exc)))
        else:
            self._later(self._dead_letter(r.value, mid, headers))
        self._audited.append(
            AuditRecord.from_rejection(
                error,
                organisation=self.participant,
                message_id=mid,
                labels=self._avro_labels(labels) if labels is not None else None,
                bundle_hash=self._ctx.policy.bundle_hash,
                thread=thread,
                details={**self._where(r), **({"sender": header.sender} if header else {})},
            )
        )

    async def _dead_letter(self, value: bytes | None, key: str, headers: list[Any]) -> None:
        """Copy the refused record to the DLQ; too large a copy becomes its digest and size."""
        from aiokafka.errors import KafkaError

        body = value or b""
        digest = [
            ("jcu.sha256", hashlib.sha256(body).hexdigest().encode()),
            ("jcu.size", str(len(body)).encode()),
        ]
        copy = body if len(body) <= DLQ_MAX_COPY else None
        try:
            fut = await self._producer.send(
                DLQ, value=copy, key=key.encode()[:256], headers=headers + digest
            )
            await fut
        except KafkaError as exc:
            try:
                fut = await self._producer.send(
                    DLQ, value=None, key=key.encode()[:256], headers=headers + digest
                )
                await fut
            except KafkaError:
                if self._metrics is not None:
                    self._metrics.rejected.labels("dead-letter-not-written").inc()
                _log.error(
                    "dead letter not written",
                    participant=self.participant,
                    message_id=key,
                    error=str(exc),
                )
