"""`AuditLog`: one enforcement point's append-only, Merkle-tree audit log on Kafka.

Every decision becomes a leaf (`jcu.audit.decisions`, keyed by the
enforcement point id, so one partition holds its records in tree order), its
content sealed under the enforcement point's audit key (`broker.audit.keys`).
The leaves of one append (a publish batch, a consumer batch) go to Kafka as
one record, a leaf pack (`_pack`), split only where a pack would grow past
`MAX_PACK_BYTES`: one record per batch, not one per message.
Every `checkpoint_every` records, every `checkpoint_interval` seconds, after a
restart that found unsealed records, and on `stop()`, the enforcement point
signs a checkpoint (a C2SP checkpoint note: origin, size, root, time) and
writes it to `jcu.audit.checkpoints` with a consistency proof from its
previous checkpoint, which is what witnesses check (`broker.audit.witness`).

Crash safety. Local state (tree size, frontier, last checkpoint, the Kafka
offset where the tree stood) is saved atomically after each checkpoint; every
leaf is written to a journal, whole, before it is handed to Kafka, and every
checkpoint to a file beside the state before it is sent. An enforcement
point may write the audit topics but not read them (only auditors do:
docs/deployment.md), so a restart works from what it holds itself: it
re-sends, byte for byte, the journal's leaves after its last checkpoint,
then a checkpoint it signed over them before the crash (the one its next
checkpoint must extend: the log never signs two inconsistent trees), and
seals the rest with a new one. A leaf Kafka had kept before the crash is then
on the topic twice, identical in every byte: readers keep one, and the
verifier tells such a copy from an insertion (`_topic`, `verify`). So leaves
written after the last checkpoint are neither lost nor counted twice, and a
record written under our key by someone else is never signed over.

Where the principal may read the audit topics (an operator's recovery, the
tests), a restart also checks that the topic still holds the last leaf the
state names (a deleted, recreated or truncated topic is refused) and that no
checkpoint of its own there covers more than it holds. Without local state,
such a principal rebuilds the tree from the topic; one that may not starts a
new tree, or refuses if a journal shows it wrote before.

The journal also serves `leaves_since`: what a crashed publisher or subscriber
decided after the mark it last settled (`hold` keeps those leaves past a
checkpoint until it moves its mark on).
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

from broker.audit._codec import (
    LeafSealer,
    can_share_leaf,
    decode_checkpoint,
    decode_leaf,
    encode_checkpoint,
    parse_leaf,
)
from broker.audit._journal import Journal
from broker.audit.acts import SendOutcome
from broker.audit.checkpoint import SignedCheckpoint, sign_checkpoint
from broker.audit.keys import AuditKeys, PointKey
from broker.audit.pack import PackCodec, pack_bounds
from broker.audit.record import (
    AuditEntry,
    AuditRecord,
    DecisionSet,
    LeafEntry,
    LoggedLeaf,
    new_decision_ids,
)
from broker.audit.state import AuditState, StateLock, load_state, save_state, state_path
from broker.audit.topic import TopicRecord, read_topic
from broker.errors import AuditError, JcuError, KafkaForbidden, KafkaUnavailable
from broker.files import write_private
from broker.kafka.clients import reliable_producer, start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.topics import AUDIT_CHECKPOINTS, AUDIT_DECISIONS
from broker.lifecycle import Service
from broker.logs import get_logger
from broker.merkle import MerkleTree, consistency_proof_from, leaf_hash
from broker.schemas import SchemaStore, default_store

_log = get_logger(__name__)


#: At most this many decisions share a leaf (one message's decisions about every
#: registered organisation fit in one).
MAX_LEAF_RECORDS = 64
#: The journal keeps leaves for a caller's `hold` at most this far behind the tree.
MAX_HELD = 50_000
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
    """One leaf pack on its way to Kafka: leaves first .. first+count-1, the `record`-th
    record of the producer batch whose future this is."""

    first: int
    count: int
    future: asyncio.Future[Any]
    record: int


@dataclass(frozen=True, slots=True)
class _Snapshot:
    tree: MerkleTree
    last_leaf: bytes


#: A leaf as the journal keeps it: index, leaf hash, bytes (None: a line of an older form).
_Journaled = tuple[int, bytes, bytes | None]


@dataclass(frozen=True, slots=True)
class _Found:
    """The newest checkpoint of its own a restart found on the topic, and where."""

    latest: SignedCheckpoint | None
    position: tuple[int, int]


@dataclass(frozen=True, slots=True)
class AuditMark:
    """Where a log stood: leaves from `index` on are at offsets from `offset` on
    (`AuditLog.mark`, `AuditLog.leaves_since`)."""

    index: int
    offset: int


class AuditLog(Service):
    """Append decisions, sign checkpoints. Use `async with AuditLog(...) as log:`.

    `kafka` is the connection its own idempotent, acks=all producer uses.
    Only one AuditLog per enforcement point may run at a time (a lock file in
    `state_dir` enforces it on one host). `keys` holds the enforcement point's
    audit secret (default: the one in `state_dir`, made on first use).
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
        keys: AuditKeys | None = None,
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
        self._keys = keys
        self._point_key: PointKey | None = None

        self._producer: Any = None
        self._tree = MerkleTree()
        self._last_leaf = b""
        self._partition = 0
        self._next_offset = 0
        self._checkpoint: SignedCheckpoint | None = None
        self._checkpoint_position = (0, -1)  # partition, offset on the checkpoints topic
        # What the next checkpoint's consistency proof is made from: the frontier of the
        # tree at the last checkpoint, and the leaf hashes appended since.
        self._cp_frontier: tuple[bytes, ...] = ()
        self._since_checkpoint: list[bytes] = []
        #: caller -> the first leaf index it may ask `leaves_since` for after a crash
        self._holds: dict[str, int] = {}
        self._saved_holds: dict[str, int] = {}  # as the file beside the journal has them
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
        self._sealer = LeafSealer(self._store, self.enforcement_point, self.point_key)
        self._packs = PackCodec(self._store)
        self._lock_file.acquire()
        try:
            await self._restore_and_reconcile()  # starts the producer
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

    @property
    def state_dir(self) -> Path:
        """Where this log keeps its state (what it last logged of other things, beside it)."""
        return self._state_path.parent

    @property
    def decisions_topic(self) -> str:
        return self._decisions

    @property
    def checkpoints_topic(self) -> str:
        return self._checkpoints

    def root(self) -> bytes:
        return self._tree.root()

    @property
    def last_checkpoint(self) -> SignedCheckpoint | None:
        return self._checkpoint

    @property
    def point_key(self) -> PointKey:
        """This enforcement point's audit key (content hashes, sealed leaves)."""
        if self._point_key is None:
            keys = self._keys or AuditKeys.open(self._state_path.parent)
            self._point_key = keys.require(self.enforcement_point)
        return self._point_key

    def content_hash(self, data: bytes) -> bytes:
        """The keyed hash under which this log names a payload (never a plain hash)."""
        return self.point_key.content_hash(data)

    def content_hash_of_digest(self, sha256: bytes) -> bytes:
        """The same, from the payload's SHA-256."""
        return self.point_key.content_hash_of_digest(sha256)

    def mark(self) -> AuditMark:
        """Where the next leaf goes: what `leaves_since` reads back from after a crash."""
        return AuditMark(self._tree.size, self._next_offset)

    def hold(self, holder: str, mark: AuditMark) -> None:
        """`holder` (a publisher's sent index, a subscriber's ledger) settled everything
        before `mark`, durably: the journal keeps the leaves from `mark` on past checkpoints,
        for `leaves_since` after a crash, until the holder moves on."""
        self._holds[holder] = mark.index
        saved = self._saved_holds.get(holder)
        if saved is None or mark.index < saved:
            # Saved now: a crash before the next checkpoint must not let the restart's first
            # checkpoint cut what the holder will ask for. (A hold moving on, or let go, may
            # wait for the next checkpoint: the saved one keeps more, never less.)
            self._save_holds()

    def release(self, holder: str) -> None:
        """`holder` will not ask `leaves_since` for anything before a mark it holds later."""
        self._holds.pop(holder, None)

    def _save_holds(self) -> None:
        self._journal.save_holds(self._holds)
        self._saved_holds = dict(self._holds)

    async def leaves_since(self, mark: AuditMark) -> list[LoggedLeaf]:
        """This log's own leaves from `mark` on, opened: what a crash may have left written
        but not yet acted on (the caller reconciles with them).

        Read from the journal (an enforcement point may not read the audit topic);
        a principal that may read it is read there if the journal no longer goes
        back to `mark` (a mark older than any `hold`)."""
        self._check_writable()
        assert self._store is not None  # noqa: S101 - narrows for mypy: _check_writable ensured a store
        keys = AuditKeys()
        keys.add(self.point_key)
        held = self._journal.tail(mark.index)
        if mark.index >= self._tree.size or (
            held
            and held[-1][0] == self._tree.size - 1
            and all(data is not None for *_, data in held)
        ):
            return [
                decode_leaf(self._store, data, keys=keys) for _, _, data in held if data is not None
            ]
        try:
            raws = await read_topic(
                self._kafka,
                self._decisions,
                partition=self._partition,
                # one record back: the pack holding a checkpoint's last leaf may hold more
                start_offset=max(min(mark.offset, self._next_offset) - 1, 0),
                key=self.enforcement_point,
                store=self._store,
            )
        except KafkaForbidden:
            raise AuditError(
                f"{self.enforcement_point}: its journal no longer holds the leaves from "
                f"{mark.index} on, and this principal may not read them from "
                f"{self._decisions}; start it once with an auditor's Kafka credentials"
            ) from None
        out = []
        seen: set[int] = set()
        for raw in raws:
            leaf = decode_leaf(self._store, raw.value, keys=keys, offset=raw.offset)
            if mark.index <= leaf.index < self._tree.size and leaf.index not in seen:
                seen.add(leaf.index)
                out.append(leaf)
        return out

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

    def submit(self, records: Sequence[AuditRecord]) -> list[asyncio.Future[AuditEntry]]:
        """Queue records now, from synchronous code running in the event loop (a listener):
        they are written in order with the other appends; await the futures to know."""
        self._check_writable()
        loop = asyncio.get_running_loop()
        futures = []
        for record in records:
            done: asyncio.Future[AuditEntry] = loop.create_future()
            self._queue.append((record, done))
            futures.append(done)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return futures

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

    async def append_sets(self, sets: Sequence[DecisionSet | SendOutcome]) -> list[LeafEntry]:
        """Add the decisions (or send outcomes) of several messages, a leaf each; returns once
        Kafka holds them.

        The cheap path for an enforcement point that decides about many
        organisations at once: no AuditRecord object per decision. All or
        nothing for bad input.
        """
        self._check_writable()
        async with self._send_lock:
            index, previous = self._tree.size, self._last_leaf
            encoded = []
            for dset in sets:
                count = dset.count if isinstance(dset, SendOutcome) else len(dset.decisions)
                if not count:
                    continue
                ids = new_decision_ids(count)
                data = self._sealer.leaf_of_set(index, previous, dset, ids)
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
        return self._sealer.leaf(index, previous, records)

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

        They go as leaf packs (one record for all of them, more only past
        `MAX_PACK_BYTES`), in whole record batches (one produce future per batch).
        The lock makes the order of indices the order of the producer's queue,
        hence the order on the partition.
        """
        out: list[_Sent] = []
        size = self._tree.size
        self._journal.add((size + i, leaf, data) for i, (_, data, leaf) in enumerate(encoded))
        bounds = list(pack_bounds([len(data) for _, data, _ in encoded]))
        values = [
            self._packs.encode(
                self.enforcement_point, size + start, [data for _, data, _ in encoded[start:end]]
            )
            for start, end in bounds
        ]
        i = 0
        while i < len(bounds):
            batch = self._producer.create_batch()
            first = i
            while (
                i < len(bounds)
                and batch.append(key=self._key, value=values[i], timestamp=None) is not None
            ):
                i += 1
            if i == first:
                self._fail(AuditError("audit leaf pack larger than a producer batch"))
                raise AuditError(
                    f"audit leaf pack of {len(values[i])} bytes does not fit a producer batch"
                )
            try:
                future = await self._producer.send_batch(
                    batch, self._decisions, partition=self._partition
                )
            except Exception as exc:
                self._fail(exc)
                raise AuditError(f"audit record not written: {exc}") from None
            for record, (start, end) in enumerate(bounds[first:i]):
                self._inflight.append(_InFlight(self._tree.size, end - start, future, record))
                for ids, _, leaf in encoded[start:end]:
                    index = self._tree.append(leaf)
                    self._since_checkpoint.append(leaf)
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

    async def checkpoint(self) -> SignedCheckpoint | None:
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
        # Every record the checkpoint covers must be in Kafka before we sign it.
        next_offset = await self._settle_inflight(size)
        previous_size = self._checkpoint.tree_size if self._checkpoint is not None else 0
        fresh = size - previous_size
        proof = consistency_proof_from(
            previous_size, self._cp_frontier, self._since_checkpoint[:fresh]
        )
        cp = sign_checkpoint(self._signer, self.enforcement_point, size, snapshot.tree.root())
        assert self._store is not None  # noqa: S101 - narrows for mypy: a writable log has a store
        data = encode_checkpoint(self._store, cp, previous_size, proof)
        # Kept before it is sent: a restart after a crash re-sends it rather than signing
        # another tree of this size (it may not read the checkpoints topic to find out).
        self._journal.keep_checkpoint(data)
        try:
            meta = await (await self._producer.send(self._checkpoints, value=data, key=self._key))
        except Exception as exc:
            self._fail(exc)
            raise AuditError(f"audit checkpoint not written: {exc}") from None
        self._checkpoint = cp
        self._checkpoint_position = (meta.partition, meta.offset)
        self._cp_frontier = snapshot.tree.frontier
        del self._since_checkpoint[:fresh]
        self._persist(snapshot.tree.frontier, snapshot.last_leaf, size, next_offset)
        _log.debug("audit checkpoint", enforcement_point=self.enforcement_point, size=size)

    async def _settle_inflight(self, size: int) -> int:
        """Wait until Kafka holds every leaf below `size`; the offset after the last one."""
        next_offset = self._next_offset
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
            # A snapshot can end inside a pack: the next checkpoint's leaves start in it.
            in_checkpoint = min(batch.count, size - batch.first)
            next_offset = future.result().offset + batch.record + 1
            if in_checkpoint == batch.count:
                self._inflight.popleft()
        return next_offset

    def _persist(
        self, frontier: tuple[bytes, ...], last_leaf: bytes, size: int, next_offset: int
    ) -> None:
        """Save the state at the checkpoint just taken; the journal forgets what it covers
        (but what a caller still holds: `hold`)."""
        assert self._checkpoint is not None  # noqa: S101 - narrows for mypy: called right after a checkpoint
        self._next_offset = next_offset
        save_state(
            self._state_path,
            AuditState(
                enforcement_point=self.enforcement_point,
                tree_size=size,
                frontier=frontier,
                last_leaf_hash=last_leaf,
                partition=self._partition,
                next_offset=next_offset,
                checkpoint=self._checkpoint,
                checkpoint_partition=self._checkpoint_position[0],
                checkpoint_offset=self._checkpoint_position[1],
                decisions_topic=self._decisions,
            ),
        )
        floor = size
        stale = [n for n, i in self._holds.items() if i < size - MAX_HELD]
        for name in stale:
            _log.warning(
                "audit journal: a mark held too long is let go",
                enforcement_point=self.enforcement_point,
                holder=name,
                index=self._holds.pop(name),
            )
        if self._holds:
            floor = min(floor, *self._holds.values())
        self._save_holds()
        self._journal.keep_from(floor)

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
        if state is not None and state.decisions_topic != self._decisions:
            raise AuditError(
                f"audit state {self._state_path} is of a tree on {state.decisions_topic}, not "
                f"{self._decisions}; give this log a state directory of its own"
            )
        self._holds = self._journal.load_holds()
        self._saved_holds = dict(self._holds)
        if state is None:
            await self._start_producer()
            await self._start_without_state()
            return
        self._tree = MerkleTree.restore(state.tree_size, state.frontier)
        self._last_leaf = state.last_leaf_hash
        self._partition = state.partition
        self._next_offset = state.next_offset
        self._checkpoint = state.checkpoint
        self._checkpoint_position = (state.checkpoint_partition, state.checkpoint_offset)
        self._cp_frontier = state.frontier
        self._snapshot_mark = state.tree_size
        tail = self._journal.tail(state.tree_size)
        legacy = any(data is None for _, _, data in tail)
        try:
            on_topic = await self._check_topic_as_producer_starts(state)
        except KafkaForbidden:
            if legacy:
                raise AuditError(
                    f"{self.enforcement_point}: its journal is of an older form that does not "
                    "keep leaves whole; start it once with Kafka credentials that may read the "
                    "audit topics (an auditor's or the platform admin's) to reconcile it"
                ) from None
            on_topic = None  # behind the wall: what this enforcement point holds is the truth
        if legacy:
            await self._read_back(state, adopt_only=self._journal.read())
            return
        await self._recover(tail, on_topic)

    async def _check_topic_as_producer_starts(self, state: AuditState) -> _Found:
        """`_check_topic` while the producer starts: the check only reads, so neither waits
        for the other's connection (a one-shot verb waits for both). The producer's failure
        is raised first, then the check's (KafkaForbidden behind the wall).

        Behind the wall once, behind it again: a principal the topic refused is noted
        beside the state, and its next starts raise KafkaForbidden without the check's
        consumer (its connections and round trips were a fifth of a one-shot verb's
        start). Another principal (the connection's changed) is checked again."""
        if self._noted_behind_wall():
            await self._start_producer()
            raise KafkaForbidden(f"{self._kafka.principal} may not read {self._decisions} (noted)")
        started, checked = await asyncio.gather(
            self._start_producer(), self._check_topic(state), return_exceptions=True
        )
        if isinstance(started, BaseException):
            raise started
        if isinstance(checked, KafkaForbidden):
            self._note_behind_wall()
        if isinstance(checked, BaseException):
            raise checked
        return checked

    @property
    def _wall_note(self) -> Path:
        return self._state_path.with_suffix(".wall")

    def _noted_behind_wall(self) -> bool:
        principal = self._kafka.principal
        try:
            return principal is not None and self._wall_note.read_text("utf-8") == principal
        except OSError:
            return False

    def _note_behind_wall(self) -> None:
        principal = self._kafka.principal
        if principal is not None:
            write_private(self._wall_note, principal.encode())

    async def _check_topic(self, state: AuditState) -> _Found:
        """Where this principal may read the audit topics: the leaf the state ends on must
        still be where it was written, and the newest checkpoint of its own there is one
        its records must bear out. Raises KafkaForbidden behind the wall."""
        assert self._store is not None  # noqa: S101 - narrows for mypy: a writable log has a store
        start = state.next_offset - 1 if state.tree_size else state.next_offset
        found = await read_topic(
            self._kafka,
            self._decisions,
            partition=self._partition,
            start_offset=start,
            key=self.enforcement_point,
            store=self._store,
        )
        if state.tree_size:
            self._check_still_there(state, found)
        latest, position = await self._latest_own_checkpoint()
        return _Found(latest, position)

    async def _recover(self, tail: Sequence[_Journaled], on_topic: _Found | None) -> None:
        """Re-send the journal's leaves after the last checkpoint, byte for byte, and the
        checkpoint signed over them before a crash (if any), in the order first written.

        Whether Kafka kept them before the crash cannot be known without reading
        the audit topic, which an enforcement point may not do. A copy Kafka
        already holds is identical to it in every byte (`_topic`, `verify`).
        """
        pending = self._journal.pending_checkpoint(self._store or default_store())
        targets: list[tuple[SignedCheckpoint, tuple[int, int] | None, bytes | None]] = []
        current = self._checkpoint.tree_size if self._checkpoint is not None else 0
        if pending is not None and pending[0].tree_size > current:
            targets.append((pending[0], None, pending[1]))
        if on_topic is not None and on_topic.latest is not None:
            cp = on_topic.latest
            if cp.tree_size > current and not any(t[0].note() == cp.note() for t in targets):
                targets.append((cp, on_topic.position, None))
            elif targets and targets[0][0].note() == cp.note():
                targets[0] = (cp, on_topic.position, None)  # it reached Kafka: nothing to re-send
        targets.sort(key=lambda t: t[0].tree_size)
        reach = self._tree.size + len(tail)
        for cp, _, _ in targets:
            if cp.tree_size > reach:
                where = "the topic" if on_topic is not None else "its journal"
                raise AuditError(
                    f"{self.enforcement_point} signed a checkpoint of {cp.tree_size} records "
                    f"but {where} holds {reach}: records are missing from {self._decisions}; "
                    "restore its state and journal, then run `jcu audit verify`"
                )
        encoded = self._chained(tail)
        done = 0
        self._snapshot_mark = reach  # no snapshot half-way: the checkpoints here come first
        try:
            for cp, position, data in targets:
                upto = cp.tree_size - self._tree.size
                await self._confirm([f for *_, f in await self._send(encoded[done : done + upto])])
                done += upto
                next_offset = await self._settle_inflight(cp.tree_size)
                if data is not None:
                    position = await self._resend_checkpoint(data)
                assert position is not None  # noqa: S101 - narrows for mypy: one of the branches set it
                self._take_checkpoint(cp, position)
                self._persist(self._tree.frontier, self._last_leaf, cp.tree_size, next_offset)
            await self._confirm([f for *_, f in await self._send(encoded[done:])])
        finally:
            self._snapshots.clear()
            self._snapshot_mark = self._checkpoint.tree_size if self._checkpoint else 0
        if tail or targets:
            _log.info(
                "audit log recovered after a stop: its unsealed leaves re-sent",
                enforcement_point=self.enforcement_point,
                records=len(tail),
                checkpoints=len(targets),
                tree_size=self._tree.size,
            )

    def _chained(self, tail: Sequence[_Journaled]) -> list[tuple[tuple[str, ...], bytes, bytes]]:
        """The journal's leaves, checked to continue the tree (hash, index, link)."""
        assert self._store is not None  # noqa: S101 - narrows for mypy: a writable log has a store
        previous = self._last_leaf
        encoded: list[tuple[tuple[str, ...], bytes, bytes]] = []
        for index, leaf, data in tail:
            assert data is not None  # noqa: S101 - narrows for mypy: journaled leaves carry data
            if leaf_hash(data) != leaf or index != self._tree.size + len(encoded):
                raise AuditError(
                    f"{self.enforcement_point}: the journal's leaf {index} does not match its "
                    "hash or position; run `jcu audit verify` before restarting"
                )
            clear = parse_leaf(self._store, data)
            if clear.previous_leaf_hash != previous or clear.enforcement_point != (
                self.enforcement_point
            ):
                raise AuditError(
                    f"{self.enforcement_point}: the journal's leaf {index} does not link to the "
                    "tree; run `jcu audit verify` before restarting"
                )
            previous = leaf
            encoded.append(((), data, leaf))
        return encoded

    async def _resend_checkpoint(self, data: bytes) -> tuple[int, int]:
        try:
            meta = await (await self._producer.send(self._checkpoints, value=data, key=self._key))
        except Exception as exc:
            self._fail(exc)
            raise AuditError(f"audit checkpoint not written: {exc}") from None
        return int(meta.partition), int(meta.offset)

    async def _start_without_state(self) -> None:
        """No local state: a new enforcement point, or lost state. Killed before its first
        checkpoint, its journal holds the tree; else a principal that may read the topic
        rebuilds it from there (an operator's recovery), one that may not starts anew."""
        self._partition = await self._partition_for_key()
        first = self._journal.tail(0)
        if first and all(data is not None for _, _, data in first):
            await self._recover(first, None)
            return
        try:
            await self._read_back(None, adopt_only=None)
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

    async def _read_back(
        self, state: AuditState | None, adopt_only: dict[int, bytes] | None
    ) -> None:
        """Adopt this enforcement point's records from the topic after the saved offset:
        with its journal (`adopt_only`), only those it wrote; without (lost state), all."""
        assert self._store is not None  # noqa: S101 - narrows for mypy: a writable log has a store
        start = 0
        if state is not None:
            start = state.next_offset - 1 if state.tree_size else state.next_offset
        found = await read_topic(
            self._kafka,
            self._decisions,
            partition=self._partition,
            start_offset=start,
            key=self.enforcement_point,
            store=self._store,
        )
        if state is not None and state.tree_size:
            # the leaves up to the state's last one (the first record, or part of its pack)
            # are below the tree's size: skipped as such below
            self._check_still_there(state, found)
        latest, latest_position = await self._latest_own_checkpoint()
        adopted = 0
        if adopt_only is None and found:
            _log.warning(
                "audit state lost: rebuilding the tree from the topic",
                enforcement_point=self.enforcement_point,
                records=len(found),
            )
        if latest is not None and latest.tree_size == self._tree.size:
            self._take_checkpoint(latest, latest_position)
        for raw in found:
            try:
                if raw.problem is not None:
                    raise AuditError(raw.problem)
                rec = parse_leaf(self._store, raw.value)
            except JcuError as exc:
                raise AuditError(
                    f"audit record at offset {raw.offset} of {self._decisions} does not decode "
                    f"({exc}); run `jcu audit verify`"
                ) from None
            if rec.index < self._tree.size:
                continue
            leaf = leaf_hash(raw.value)
            if (
                rec.index != self._tree.size
                or rec.previous_leaf_hash != self._last_leaf
                or raw.claimed_index not in (None, rec.index)
            ):
                raise AuditError(
                    f"{self.enforcement_point}: record at offset {raw.offset} (index {rec.index}) "
                    f"does not continue the tree at size {self._tree.size}; run `jcu audit verify`"
                )
            if adopt_only is not None and adopt_only.get(rec.index) != leaf:
                raise AuditError(
                    f"{self.enforcement_point}: record at offset {raw.offset} (index {rec.index}) "
                    "continues the tree but was not written by this enforcement point; "
                    "refusing to sign over it; run `jcu audit verify`"
                )
            self._tree.append(leaf)
            self._since_checkpoint.append(leaf)
            self._last_leaf = leaf
            self._next_offset = raw.offset + 1
            adopted += 1
            if latest is not None and latest.tree_size == self._tree.size:
                self._take_checkpoint(latest, latest_position)
        if latest is not None and latest.tree_size > self._tree.size:
            raise AuditError(
                f"{self.enforcement_point} signed a checkpoint of {latest.tree_size} records "
                f"but the topic holds {self._tree.size}: records are missing from "
                f"{self._decisions}; run `jcu audit verify`"
            )
        if state is None:
            self._snapshot_mark = self._checkpoint.tree_size if self._checkpoint else 0
        if adopted:
            _log.info(
                "audit records recovered from the topic",
                enforcement_point=self.enforcement_point,
                records=adopted,
                tree_size=self._tree.size,
            )

    def _check_still_there(self, state: AuditState, found: Sequence[TopicRecord]) -> None:
        """The leaf the state ends on must be where it was written (its record, or a leaf of
        its pack, at the offset the state names), as it was written."""
        assert self._store is not None  # noqa: S101 - narrows for mypy: a started log has a store
        where = f"offset {state.next_offset - 1} of {self._decisions}"
        for raw in found:
            if raw.offset != state.next_offset - 1:
                break
            if raw.problem is not None or leaf_hash(raw.value) != state.last_leaf_hash:
                continue
            try:
                clear = parse_leaf(self._store, raw.value)
            except JcuError:
                continue
            if clear.index == state.tree_size - 1 and raw.claimed_index in (None, clear.index):
                return
        raise AuditError(
            f"{self.enforcement_point}: the audit topic no longer holds record "
            f"{state.tree_size - 1} at {where}, where this enforcement point wrote it: the "
            "topic was deleted, truncated or rewritten. Restore it; `jcu audit verify` shows "
            "what is missing. (Moving the state away starts a new tree, which verification "
            "and witnesses will report as inconsistent with what they saw.)"
        )

    async def _latest_own_checkpoint(
        self,
    ) -> tuple[SignedCheckpoint | None, tuple[int, int]]:
        """The newest checkpoint on the topic signed by this enforcement point's key and not
        older than the state's: the one its next checkpoint must extend."""
        assert self._store is not None  # noqa: S101 - narrows for mypy: a writable log has a store
        partition, offset = self._checkpoint_position
        raws = await read_topic(
            self._kafka,
            self._checkpoints,
            store=self._store,
            partition=partition if offset >= 0 else None,
            start_offset=max(offset, 0),
            key=self.enforcement_point,
        )
        public = self._signer.public_key()
        latest: SignedCheckpoint | None = None
        position = self._checkpoint_position
        for raw in raws:
            try:
                record = decode_checkpoint(self._store, raw.value)
            except JcuError:
                continue  # not ours to judge: the verifier names it
            cp = record.signed
            if cp.origin != self.enforcement_point or cp.log_key([public]) is None:
                continue
            if latest is None or cp.tree_size >= latest.tree_size:
                latest, position = cp, (raw.partition, raw.offset)
        current = self._checkpoint
        if latest is None or (current is not None and latest.tree_size < current.tree_size):
            return None, self._checkpoint_position
        return latest, position

    def _take_checkpoint(self, cp: SignedCheckpoint, position: tuple[int, int]) -> None:
        """The tree stands at `cp`'s size: `cp` is the checkpoint to extend, if its root is
        this tree's; else the log and what it signed disagree, and it must not go on."""
        if cp.root_hash != self._tree.root():
            raise AuditError(
                f"{self.enforcement_point} signed a checkpoint of size {cp.tree_size} whose root "
                "is not the root of its records: the records were rewritten; run "
                "`jcu audit verify`"
            )
        self._checkpoint = cp
        self._checkpoint_position = position
        self._cp_frontier = self._tree.frontier
        self._since_checkpoint = []
