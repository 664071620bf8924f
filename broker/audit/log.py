"""`AuditLog`: one enforcement point's append-only, Merkle-tree audit log on Kafka.

Every decision becomes a leaf (`jcu.audit.decisions`, keyed by the
enforcement point id, so one partition holds its records in tree order).
Every `checkpoint_every` records, every `checkpoint_interval` seconds, after a
restart that found unsealed records, and on `stop()`, the enforcement point
signs a checkpoint (origin, size, root) and writes it to `jcu.audit.checkpoints`.

Crash safety. Local state (tree size, frontier, last checkpoint, the Kafka
offset where the tree stood) is saved atomically after each checkpoint, and
every leaf is written to a journal, whole, before it is handed to Kafka. An
enforcement point may write the audit topics but not read them (only
auditors do: docs/deployment.md), so on `start()` it re-sends, byte for byte,
the journal's leaves after its last checkpoint and signs a checkpoint over
them. A leaf Kafka had kept before the crash is then on the topic twice,
identical in every byte; readers keep one (`_topic.read_topic`). So records
written after the last checkpoint are neither lost nor counted twice. A
record whose write was never acknowledged made its `append` fail (or never
return), so its decision was never acted on; it is sealed all the same.
Without local state, a principal that may read the topic rebuilds the tree
from it (an operator's recovery); one that may not starts a new tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit._codec import LeafEncoder, can_share_leaf, decode_leaf, encode_checkpoint
from broker.audit._journal import Journal
from broker.audit._state import AuditState, StateLock, load_state, save_state, state_path
from broker.audit._topic import read_topic
from broker.audit.checkpoint import Checkpoint
from broker.audit.record import (
    AuditEntry,
    AuditRecord,
    DecisionSet,
    LeafEntry,
    new_decision_ids,
)
from broker.errors import AuditError, JcuError, KafkaForbidden, KafkaUnavailable
from broker.kafka.clients import reliable_producer, start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.topics import AUDIT_CHECKPOINTS, AUDIT_DECISIONS
from broker.lifecycle import Service
from broker.logs import get_logger
from broker.merkle import MerkleTree, leaf_hash
from broker.schemas import SchemaStore, default_store

_log = get_logger(__name__)


#: At most this many decisions share a leaf (one message's decisions about every
#: registered organisation fit in one).
MAX_LEAF_RECORDS = 64
_T = TypeVar("_T")


def leaves(items: Sequence[_T], key: Callable[[_T], AuditRecord]) -> Iterator[list[_T]]:
    """Group consecutive items whose records are about one message (same action, content,
    labels and policy): a leaf each.

    One leaf per message (not per decision) is what keeps the log cheap: the
    hashing, tree, journal and Kafka work is paid once for all its decisions.
    """
    group: list[_T] = []
    for item in items:
        if group and (
            len(group) >= MAX_LEAF_RECORDS or not can_share_leaf(key(group[0]), key(item))
        ):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


#: A leaf handed to the producer: its index, leaf hash, decision ids, produce future.
_Sent = tuple[int, bytes, tuple[str, ...], "asyncio.Future[Any]"]


@dataclass(frozen=True, slots=True)
class _InFlight:
    """One record batch on its way to Kafka: leaves first .. first+count-1."""

    first: int
    count: int
    future: asyncio.Future[Any]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    tree: MerkleTree
    last_leaf: bytes


class AuditLog(Service):
    """Append decisions, sign checkpoints. Use `async with AuditLog(...) as log:`.

    `kafka` is the connection its own idempotent, acks=all producer uses.
    Only one AuditLog per enforcement point may run at a time (a lock file in
    `state_dir` enforces it on one host).
    """

    def __init__(
        self,
        enforcement_point: str,
        signer: ed25519.Ed25519PrivateKey,
        kafka: KafkaConnection,
        state_dir: Path,
        *,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 30.0,
        store: SchemaStore | None = None,
        decisions_topic: str = AUDIT_DECISIONS,
        checkpoints_topic: str = AUDIT_CHECKPOINTS,
    ) -> None:
        if not enforcement_point or "\n" in enforcement_point:
            raise AuditError("an enforcement point id is one non-empty line, e.g. cert-eu/publish")
        if checkpoint_every < 1 or checkpoint_interval <= 0:
            raise AuditError("checkpoint_every and checkpoint_interval must be positive")
        self.enforcement_point = enforcement_point
        self._key = enforcement_point.encode()
        self._signer = signer
        self._kafka = kafka
        self._state_path = state_path(Path(state_dir), enforcement_point)
        self._journal = Journal(self._state_path.with_suffix(".journal"))
        self._lock_file = StateLock(self._state_path)
        self._every = checkpoint_every
        self._interval = checkpoint_interval
        self._store = store
        self._decisions = decisions_topic
        self._checkpoints = checkpoints_topic

        self._producer: Any = None
        self._tree = MerkleTree()
        self._last_leaf = b""
        self._partition = 0
        self._next_offset = 0
        self._checkpoint: Checkpoint | None = None
        self._inflight: deque[_InFlight] = deque()
        self._snapshots: deque[_Snapshot] = deque()
        self._snapshot_mark = 0  # tree size of the newest snapshot (or checkpoint)
        self._send_lock = asyncio.Lock()
        self._queue: list[tuple[AuditRecord, asyncio.Future[AuditEntry]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._checkpoint_lock = asyncio.Lock()
        self._due = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        self._running = False
        self._closing = False

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Lock the state, reconcile the tree with the topic, seal what was unsealed."""
        if self._running:
            return
        if self._store is None:
            self._store = default_store()
        self._encoder = LeafEncoder(self._store)
        self._lock_file.acquire()
        try:
            await self._start_producer()
            await self._restore_and_reconcile()
            self._running = True
            await self.checkpoint()  # seals records recovered from the topic, if any
        except BaseException:
            self._running = False
            await self._stop_producer()
            self._lock_file.release()
            raise
        self._closing = False
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        """Wait for outstanding writes, sign a final checkpoint, save state, release the lock."""
        if not self._running:
            return
        try:
            if self._drainer is not None:
                await self._drainer  # appends already made are written before the last checkpoint
            if self._ticker is not None:
                # Let a checkpoint in progress finish: cancelling it half-way could sign twice.
                self._closing = True
                self._due.set()
                await self._ticker
            if self._failed is None:
                await self.checkpoint()
        finally:
            self._running = False
            await self._stop_producer()
            self._lock_file.release()

    # -- appending -----------------------------------------------------------

    @property
    def size(self) -> int:
        return self._tree.size

    def root(self) -> bytes:
        return self._tree.root()

    @property
    def last_checkpoint(self) -> Checkpoint | None:
        return self._checkpoint

    def _check_writable(self) -> None:
        if not self._running:
            raise AuditError(f"audit log of {self.enforcement_point} is not started")
        if self._failed is not None:
            raise AuditError(f"audit log of {self.enforcement_point} failed: {self._failed}")

    async def append(self, record: AuditRecord) -> AuditEntry:
        """Add one decision; returns once Kafka (acks=all) holds it.

        Callers may append concurrently; indices follow the order of calls.
        Concurrent appends are written in groups by one task (group commit),
        so many small awaits cost little more than one `append_many`.
        Raises AuditError if the log is not running or a write failed (the log
        then refuses further appends: restart it to reconcile with the topic).
        """
        self._check_writable()
        done: asyncio.Future[AuditEntry] = asyncio.get_running_loop().create_future()
        self._queue.append((record, done))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await done

    async def append_many(self, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Add several decisions; returns once Kafka holds them all.

        Consecutive decisions about one message share a leaf (see `leaves`).
        All or nothing for bad input: every record is encoded before any is sent.
        """
        self._check_writable()
        async with self._send_lock:
            pending = await self._enqueue(records)
        await self._confirm([future for *_, future in pending])
        return [
            AuditEntry(index, leaf, decision_id)
            for index, leaf, ids, _ in pending
            for decision_id in ids
        ]

    async def append_sets(self, sets: Sequence[DecisionSet]) -> list[LeafEntry]:
        """Add the decisions of several messages, a leaf each; returns once Kafka holds them.

        The cheap path for an enforcement point that decides about many
        organisations at once: no AuditRecord object per decision. All or
        nothing for bad input.
        """
        self._check_writable()
        async with self._send_lock:
            index, previous = self._tree.size, self._last_leaf
            encoded = []
            for dset in sets:
                if not dset.decisions:
                    continue
                ids = new_decision_ids(len(dset.decisions))
                data = self._encoder.encode_set(
                    self.enforcement_point, index, previous, dset, ids, ids_are_canonical=True
                )
                previous = leaf_hash(data)
                encoded.append((ids, data, previous))
                index += 1
            pending = await self._send(encoded)
        await self._confirm([future for *_, future in pending])
        return [LeafEntry(index, leaf, ids) for index, leaf, ids, _ in pending]

    async def _confirm(self, futures: Sequence[asyncio.Future[Any]]) -> None:
        """Wait for the produce futures; a failure fails the log (restart reconciles)."""
        if not futures:
            return
        # wait() leaves the producer's futures alone if this caller is cancelled.
        await asyncio.wait(futures)
        for future in futures:
            exc = future.exception() if not future.cancelled() else asyncio.CancelledError()
            if exc is not None:
                self._fail(exc)
                raise AuditError(f"audit record not written: {exc}")

    async def _drain(self) -> None:
        """Write queued single appends, in call order, and resolve each caller's future."""
        while self._queue:
            batch, self._queue = self._queue, []
            async with self._send_lock:
                good: list[tuple[AuditRecord, asyncio.Future[AuditEntry]]] = []
                for record, done in batch:
                    if done.cancelled():
                        continue
                    try:
                        self._check_writable()
                        good.append((record, done))
                    except AuditError as exc:
                        done.set_exception(exc)
                encoded = []
                waiting: list[asyncio.Future[AuditEntry]] = []
                index, previous = self._tree.size, self._last_leaf
                for group in leaves(good, key=lambda pair: pair[0]):
                    records = [record for record, _ in group]
                    try:
                        data = self._encode(index, previous, records)
                    except JcuError as exc:  # these records only: nothing was sent for them
                        for _, done in group:
                            done.set_exception(exc)
                        continue
                    previous = leaf_hash(data)
                    encoded.append((tuple(r.decision_id for r in records), data, previous))
                    waiting.extend(done for _, done in group)
                    index += 1
                try:
                    sent = await self._send(encoded)
                except AuditError as exc:
                    for done in waiting:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                callers = iter(waiting)
                for leaf_index, leaf, ids, future in sent:
                    for decision_id in ids:
                        entry = AuditEntry(leaf_index, leaf, decision_id)
                        future.add_done_callback(
                            functools.partial(self._delivered, entry, next(callers))
                        )

    def _delivered(
        self, entry: AuditEntry, done: asyncio.Future[AuditEntry], future: asyncio.Future[Any]
    ) -> None:
        exc = None if future.cancelled() else future.exception()
        if future.cancelled() or exc is not None:
            self._fail(exc or asyncio.CancelledError())
            if not done.done():
                done.set_exception(AuditError(f"audit record not written: {exc}"))
        elif not done.done():
            done.set_result(entry)

    def _encode(self, index: int, previous: bytes, records: Sequence[AuditRecord]) -> bytes:
        assert self._store is not None
        return self._encoder.encode(self.enforcement_point, index, previous, records)

    async def _enqueue(self, records: Sequence[AuditRecord]) -> list[_Sent]:
        """Encode all records (a bad one stops the batch before anything is sent), then send."""
        self._check_writable()
        index, previous = self._tree.size, self._last_leaf
        encoded = []
        for group in leaves(records, key=lambda record: record):
            data = self._encode(index, previous, group)
            previous = leaf_hash(data)
            encoded.append((tuple(r.decision_id for r in group), data, previous))
            index += 1
        return await self._send(encoded)

    async def _send(self, encoded: Sequence[tuple[tuple[str, ...], bytes, bytes]]) -> list[_Sent]:
        """Hand encoded, chained leaves (decision ids, data, leaf hash) to the producer. Call
        with the send lock held. Returns (index, leaf hash, decision ids, future) per leaf.

        They go as whole record batches (one produce future per batch, not per
        record: the per-record path costs more than encoding them). The lock
        makes the order of indices the order of the producer's queue, hence the
        order on the partition.
        """
        out: list[_Sent] = []
        size = self._tree.size
        self._journal.add((size + i, leaf, data) for i, (_, data, leaf) in enumerate(encoded))
        i = 0
        while i < len(encoded):
            batch = self._producer.create_batch()
            first = i
            while (
                i < len(encoded)
                and batch.append(key=self._key, value=encoded[i][1], timestamp=None) is not None
            ):
                i += 1
            if i == first:
                self._fail(AuditError("audit record larger than a producer batch"))
                raise AuditError(
                    f"audit record of {len(encoded[i][1])} bytes does not fit a producer batch"
                )
            try:
                future = await self._producer.send_batch(
                    batch, self._decisions, partition=self._partition
                )
            except Exception as exc:
                self._fail(exc)
                raise AuditError(f"audit record not written: {exc}") from None
            self._inflight.append(_InFlight(self._tree.size, i - first, future))
            for ids, _, leaf in encoded[first:i]:
                index = self._tree.append(leaf)
                self._last_leaf = leaf
                if self._tree.size - self._snapshot_mark >= self._every:
                    self._take_snapshot()
                out.append((index, leaf, ids, future))
        return out

    # -- checkpoints ---------------------------------------------------------

    def _take_snapshot(self) -> None:
        """Freeze the tree as it is now, to be checkpointed once its records are in Kafka."""
        self._snapshots.append(_Snapshot(self._tree.copy(), self._last_leaf))
        self._snapshot_mark = self._tree.size
        self._due.set()

    async def checkpoint(self) -> Checkpoint | None:
        """Sign and write a checkpoint now (if anything is unsealed); returns the latest."""
        if self._tree.size > self._snapshot_mark:
            self._take_snapshot()
        await self._write_checkpoints()
        return self._checkpoint

    async def _tick(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), self._interval)
            self._due.clear()
            if self._closing:
                return
            if not self._snapshots and self._tree.size > self._snapshot_mark:
                self._take_snapshot()  # the interval passed with records still unsealed
                self._due.clear()
            try:
                await self._write_checkpoints()
            except AuditError as exc:
                _log.error(
                    "audit checkpoint failed",
                    enforcement_point=self.enforcement_point,
                    error=str(exc),
                )
                return

    async def _write_checkpoints(self) -> None:
        """Checkpoint every queued snapshot, in order."""
        async with self._checkpoint_lock:
            while self._snapshots:
                await self._write_checkpoint(self._snapshots[0])
                self._snapshots.popleft()

    async def _write_checkpoint(self, snapshot: _Snapshot) -> None:
        if self._failed is not None:
            raise AuditError(f"audit log of {self.enforcement_point} failed: {self._failed}")
        size = snapshot.tree.size
        next_offset = self._next_offset
        # Every record the checkpoint covers must be in Kafka before we sign it.
        covered = []
        for batch in self._inflight:
            if batch.first >= size:
                break
            covered.append(batch)
        if covered:
            await asyncio.wait([b.future for b in covered])
        for batch in covered:
            future = batch.future
            exc = future.exception() if not future.cancelled() else asyncio.CancelledError()
            if exc is not None:
                self._fail(exc)
                raise AuditError(f"audit record not written: {exc}")
            # A snapshot can end inside a batch: the batch's records have consecutive offsets.
            in_checkpoint = min(batch.count, size - batch.first)
            next_offset = future.result().offset + in_checkpoint
            if in_checkpoint == batch.count:
                self._inflight.popleft()
        cp = Checkpoint.sign(self._signer, self.enforcement_point, size, snapshot.tree.root())
        assert self._store is not None
        try:
            sent = await self._producer.send(
                self._checkpoints, value=encode_checkpoint(self._store, cp), key=self._key
            )
            await sent
        except Exception as exc:
            self._fail(exc)
            raise AuditError(f"audit checkpoint not written: {exc}") from None
        self._checkpoint = cp
        self._next_offset = next_offset
        save_state(
            self._state_path,
            AuditState(
                enforcement_point=self.enforcement_point,
                tree_size=size,
                frontier=snapshot.tree.frontier,
                last_leaf_hash=snapshot.last_leaf,
                partition=self._partition,
                next_offset=next_offset,
                checkpoint=cp,
            ),
        )
        self._journal.keep_from(size)
        _log.debug("audit checkpoint", enforcement_point=self.enforcement_point, size=size)

    def _fail(self, exc: BaseException) -> None:
        if self._failed is None:
            self._failed = exc
            _log.error(
                "audit log write failed", enforcement_point=self.enforcement_point, error=str(exc)
            )

    # -- Kafka and state -----------------------------------------------------

    async def _start_producer(self) -> None:
        self._producer = reliable_producer(self._kafka, linger_ms=2)
        try:
            await start_client(self._producer, self._kafka)
        except KafkaUnavailable as exc:
            self._producer = None
            raise AuditError(str(exc)) from None

    async def _stop_producer(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    async def _partition_for_key(self) -> int:
        from aiokafka.partitioner import DefaultPartitioner

        partitions = await self._producer.partitions_for(self._decisions)
        if not partitions:
            raise AuditError(f"topic {self._decisions} does not exist; create it with `jcu init`")
        ordered = sorted(partitions)
        return int(DefaultPartitioner()(self._key, ordered, ordered))

    async def _restore_and_reconcile(self) -> None:
        state = load_state(self._state_path)
        if state is not None and state.enforcement_point != self.enforcement_point:
            raise AuditError(f"audit state {self._state_path} belongs to {state.enforcement_point}")
        if state is None:
            await self._start_without_state()
            return
        self._tree = MerkleTree.restore(state.tree_size, state.frontier)
        self._last_leaf = state.last_leaf_hash
        self._partition = state.partition
        self._next_offset = state.next_offset
        self._checkpoint = state.checkpoint
        self._snapshot_mark = state.tree_size
        tail = self._journal.tail(state.tree_size)
        if not tail:
            return  # everything this enforcement point wrote is under its last checkpoint
        if any(data is None for _, _, data in tail):
            # A journal from before leaves were kept whole: read back, as it did then.
            await self._read_back(adopt_only=self._journal.read())
            return
        await self._resend(tail)

    async def _resend(self, tail: Sequence[tuple[int, bytes, bytes | None]]) -> None:
        """Write again the leaves sent after the last checkpoint, byte for byte.

        Whether Kafka kept them before the crash cannot be known without reading
        the audit topic, which an enforcement point may not do (only auditors
        read it). A copy Kafka already holds is identical to it in every byte,
        and readers keep one of each (`_topic.read_topic`).
        """
        previous = self._last_leaf
        encoded: list[tuple[tuple[str, ...], bytes, bytes]] = []
        for index, leaf, data in tail:
            assert data is not None
            if leaf_hash(data) != leaf or index != self._tree.size + len(encoded):
                raise AuditError(
                    f"{self.enforcement_point}: the journal's leaf {index} does not match its "
                    f"hash or position; run `jcu audit verify` before restarting"
                )
            rec = decode_leaf(self._store or default_store(), data)
            if rec.previous_leaf_hash != previous:
                raise AuditError(
                    f"{self.enforcement_point}: the journal's leaf {index} does not link to the "
                    "tree; run `jcu audit verify` before restarting"
                )
            previous = leaf
            encoded.append(((), data, leaf))
        await self._confirm([future for *_, future in await self._send(encoded)])
        _log.info(
            "audit records re-sent after a restart",
            enforcement_point=self.enforcement_point,
            records=len(encoded),
            tree_size=self._tree.size,
        )

    async def _start_without_state(self) -> None:
        """No local state: a new enforcement point, or lost state. Rebuild from the topic when
        this principal may read it (an operator's recovery); else start a new tree."""
        self._partition = await self._partition_for_key()
        first = self._journal.tail(0)
        if first and all(data is not None for _, _, data in first):
            await self._resend(first)  # killed before its first checkpoint: the tree is these
            return
        try:
            await self._read_back(adopt_only=None)
        except KafkaForbidden:
            if self._journal.path.exists():
                # It wrote before: a new tree would fork its log. Only a reader can rebuild it.
                raise AuditError(
                    f"{self.enforcement_point}: the audit state {self._state_path} is missing; "
                    "restore it, or start this enforcement point once with Kafka credentials "
                    "that may read the audit topics (an auditor's or the platform admin's) to "
                    "rebuild it from the topic"
                ) from None
            _log.info(
                "new audit tree (no local state; the audit topic is for auditors to read)",
                enforcement_point=self.enforcement_point,
            )

    async def _read_back(self, adopt_only: dict[int, bytes] | None) -> None:
        """Adopt this enforcement point's records from the topic after the saved offset:
        with its journal (`adopt_only`), only those it wrote; without (lost state), all."""
        assert self._store is not None
        found = await read_topic(
            self._kafka,
            self._decisions,
            partition=self._partition,
            start_offset=self._next_offset,
            key=self.enforcement_point,
        )
        adopted = 0
        if adopt_only is None and found:
            _log.warning(
                "audit state lost: rebuilding the tree from the topic",
                enforcement_point=self.enforcement_point,
                records=len(found),
            )
        for raw in found:
            try:
                rec = decode_leaf(self._store, raw.value, offset=raw.offset)
            except JcuError as exc:
                raise AuditError(
                    f"audit record at offset {raw.offset} of {self._decisions} does not decode "
                    f"({exc}); run `jcu audit verify`"
                ) from None
            if rec.index < self._tree.size:
                continue
            if rec.index != self._tree.size or rec.previous_leaf_hash != self._last_leaf:
                raise AuditError(
                    f"{self.enforcement_point}: record at offset {raw.offset} (index {rec.index}) "
                    f"does not continue the tree at size {self._tree.size}; run `jcu audit verify`"
                )
            if adopt_only is not None and adopt_only.get(rec.index) != rec.leaf_hash:
                raise AuditError(
                    f"{self.enforcement_point}: record at offset {raw.offset} (index {rec.index}) "
                    "continues the tree but was not written by this enforcement point; "
                    "refusing to sign over it; run `jcu audit verify`"
                )
            self._tree.append(rec.leaf_hash)
            self._last_leaf = rec.leaf_hash
            self._next_offset = raw.offset + 1
            adopted += 1
        if adopted:
            _log.info(
                "audit records recovered from the topic",
                enforcement_point=self.enforcement_point,
                records=adopted,
                tree_size=self._tree.size,
            )
