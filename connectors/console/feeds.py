"""What the console reads from Kafka, kept up to date incrementally by one consumer each.

`AuditFeed` holds the audit topics as read so far (through broker.audit's
decoder and verifier, so changes to the log land in one place) and
re-verifies only when something new arrived. Leaves are sealed to their
enforcement points' audit keys: the console reads those of its own node and
those it was given (`jcu console --audit-keys`, what an operator holds for the
platform view); the others it verifies and counts, but cannot show. `EnvelopeIndex` holds the clear
headers of the data topics this node may read: payload types, recipients and
retractions, never content.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker.audit import (
    AuditKeys,
    InclusionProof,
    KeyResolver,
    KeyValidity,
    LoggedRecord,
    ReadCount,
    VerificationReport,
    Verifier,
    iter_records,
    proof_against,
)
from broker.audit.pack import PackCodec
from broker.audit.topic import TopicRecord, unpack
from broker.envelope.header import decode_envelope
from broker.errors import AuditVerificationError, JcuError
from broker.kafka.clients import consumer as new_consumer
from broker.kafka.clients import start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import partitions
from broker.kafka.topics import AUDIT_CHECKPOINTS, AUDIT_COSIGNATURES, AUDIT_DECISIONS
from broker.lifecycle import Service
from broker.merkle import ProofTree
from broker.schemas import SchemaStore


class _Tail(Service):
    """One consumer on every partition of `topics`; `poll()` returns what is new up to
    the end offsets as of the call."""

    def __init__(self, kafka: KafkaConnection, topics: list[str]) -> None:
        self._kafka = kafka
        self._topics = topics
        self._consumer: Any = None
        self._tps: list[Any] = []

    async def start(self) -> None:
        consumer = new_consumer(
            self._kafka, auto_offset_reset="earliest", isolation_level="read_committed"
        )
        await start_client(consumer, self._kafka)
        self._consumer = consumer
        await self._assign()

    async def _assign(self) -> None:
        tps = await partitions(self._consumer, self._topics)
        if tps != self._tps:
            new = [tp for tp in tps if tp not in self._tps]
            self._consumer.assign(tps)
            for tp in new:
                self._consumer.seek(tp, 0)
            self._tps = tps

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def poll(self) -> list[Any]:
        if not self._tps:
            await self._assign()
            if not self._tps:
                return []
        consumer = self._consumer
        ends = await consumer.end_offsets(self._tps)
        out: list[Any] = []
        while True:
            behind = [tp for tp in self._tps if await consumer.position(tp) < ends[tp]]
            if not behind:
                return out
            batch = await consumer.getmany(*behind, timeout_ms=1000)
            for tp, records in batch.items():
                out.extend(r for r in records if r.offset < ends[tp])


class AuditFeed(Service):
    """Every audit record this console can read, and every checkpoint and cosignature so far,
    decoded and verified."""

    def __init__(
        self,
        kafka: KafkaConnection,
        store: SchemaStore,
        keys: KeyResolver,
        valid: KeyValidity,
        audit_keys: AuditKeys | None = None,
    ) -> None:
        self._store = store
        self._packs = PackCodec(store)
        self._keys = keys
        self._valid = valid
        self._audit_keys = audit_keys if audit_keys is not None else AuditKeys()
        self._tail = _Tail(kafka, [AUDIT_DECISIONS, AUDIT_CHECKPOINTS, AUDIT_COSIGNATURES])
        self._decisions: list[TopicRecord] = []
        self._checkpoints: list[TopicRecord] = []
        self._cosignatures: list[TopicRecord] = []
        #: per enforcement point, its leaf hashes in tree order (for inclusion proofs)
        self._trees: dict[str, ProofTree] = {}
        self._verifier: Verifier | None = None
        self.records: list[LoggedRecord] = []
        self.by_message: dict[str, list[LoggedRecord]] = defaultdict(list)
        self.undecodable = 0
        #: leaves of enforcement points whose audit key this console does not hold
        self.sealed = 0
        self.report = VerificationReport()
        self.verified_at: datetime | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._tail.start()

    async def stop(self) -> None:
        await self._tail.stop()

    async def refresh(self, now: datetime) -> None:
        """Read what is new; decode it; verify again if anything arrived."""
        async with self._lock:
            new = await self._tail.poll()
            fresh_decisions = []
            for r in new:
                key = r.key.decode("utf-8", "replace") if r.key is not None else ""
                rec = TopicRecord(key, r.value or b"", r.partition, r.offset)
                if r.topic == AUDIT_DECISIONS:
                    fresh_decisions.extend(unpack(self._packs, rec))  # a leaf pack's leaves
                elif r.topic == AUDIT_CHECKPOINTS:
                    self._checkpoints.append(rec)
                else:
                    self._cosignatures.append(rec)
            self._decisions.extend(fresh_decisions)
            count = ReadCount()
            decoded = [
                r
                for r in iter_records(self._store, fresh_decisions, self._audit_keys, count)
                # a leaf re-sent after a restart, read before: once is enough
                if r.index >= self._tree_size(r.enforcement_point)
            ]
            self._grow_trees(decoded)
            self.undecodable += count.bad
            self.sealed += count.sealed
            self.records.extend(decoded)
            for logged in decoded:
                self.by_message[logged.record.message_id].append(logged)
            if new or self.verified_at is None:
                self.report, self._verifier = await asyncio.to_thread(self._verify)
                self.verified_at = now

    def _tree_size(self, ep: str) -> int:
        tree = self._trees.get(ep)
        return tree.size if tree is not None else 0

    def _grow_trees(self, decoded: list[LoggedRecord]) -> None:
        """The trees of the logs this console reads (every leaf of them opens with its key);
        a leaf out of place is left out, and the verifier fails that log."""
        for rec in decoded:
            tree = self._trees.setdefault(rec.enforcement_point, ProofTree())
            if rec.index == tree.size:
                tree.append(rec.leaf_hash)

    def _verify(self) -> tuple[VerificationReport, Verifier]:
        v = Verifier(self._store, self._keys, self._valid, audit_keys=self._audit_keys)
        for c in list(self._checkpoints):
            v.checkpoint(c)
        for c in list(self._cosignatures):
            v.cosignature(c)
        for r in list(self._decisions):
            v.record(r)
        return v.finish(), v

    def prove(self, rec: LoggedRecord) -> InclusionProof:
        """The inclusion proof of a record this console read, against the checkpoint of its
        log that the most witnesses cosigned; refused if that log does not verify."""
        ep = rec.enforcement_point
        report = self.report.report(ep)
        if report is None or report.failure is not None or self._verifier is None:
            why = report.failure.message if report and report.failure else "not verified yet"
            raise AuditVerificationError(f"{ep}: {why}; no proof from a log that does not verify")
        tree = self._trees.get(ep, ProofTree())
        return proof_against(rec, tree, self._verifier.candidates(ep), self._keys)


@dataclass(frozen=True, slots=True)
class EnvelopeFacts:
    """A data record's clear header: what any reader of the topic sees."""

    message_id: str
    sender: str
    payload_type: str
    topic: str
    created: datetime
    recipients: tuple[str, ...]


class EnvelopeIndex(Service):
    """Clear headers of the data topics, by message id; retractions apart."""

    def __init__(self, kafka: KafkaConnection, store: SchemaStore, topics: list[str]) -> None:
        self._store = store
        self._tail = _Tail(kafka, topics)
        self.topics = tuple(topics)
        self.messages: dict[str, list[EnvelopeFacts]] = defaultdict(list)
        #: retracted message id -> the retraction's header
        self.retractions: dict[str, EnvelopeFacts] = {}
        #: records on the data topics that are not envelopes this version reads
        self.unreadable = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._tail.start()

    async def stop(self) -> None:
        await self._tail.stop()

    async def refresh(self) -> None:
        async with self._lock:
            for r in await self._tail.poll():
                try:
                    h = decode_envelope(self._store, r.value or b"").header
                except JcuError:
                    self.unreadable += 1  # counted and shown: subscribers dead-letter them
                    continue
                facts = EnvelopeFacts(
                    h.message_id,
                    h.sender,
                    h.payload_type.rpartition(".")[2],
                    r.topic,
                    h.created,
                    h.recipient_ids,
                )
                if facts.payload_type == "Retraction":
                    target = r.key.decode("utf-8", "replace") if r.key else ""
                    self.retractions[target] = facts
                else:
                    self.messages[h.message_id].append(facts)

    def payload_type(self, message_id: str) -> str | None:
        copies = self.messages.get(message_id)
        return copies[0].payload_type if copies else None
