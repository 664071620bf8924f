"""Reading the audit topics back: up to the end offsets seen at the start, whole or streamed.

Only auditors (and witnesses, for the checkpoints) may read these topics
(docs/deployment.md); a principal that may not gets `KafkaForbidden`, saying
whose credentials to use, even when the topic is empty.

Re-sent copies. An enforcement point that restarts after a crash re-sends,
byte for byte, what it cannot know Kafka kept (it may not read the topics
back): the leaves after its last checkpoint, and a checkpoint it signed just
before the crash. A record byte-identical to the previous record of the same
key is dropped here (a re-sent checkpoint follows its original directly);
a re-sent run of leaves is told from an insertion by the verifier, and
skipped by the readers of records (`query.iter_records`).

Leaf packs. A record of the decisions topic may hold many leaves (`broker.audit.pack`):
it is read here as its leaves, one `TopicRecord` each, all at the pack's
offset and each with the index the pack gives it (`claimed_index`), so every
reader sees leaves as it did when each leaf was a record of its own. A
re-sent run may be grouped in other packs than the leaves Kafka kept before
a crash: the readers of leaves keep one copy of each (same index, same bytes).
A pack that does not decode, or is keyed to another enforcement point than
its own, is passed on whole with the reason (`problem`): the verifier reports
it, the other readers skip it as they skip any record that is not a leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from broker.audit.pack import PackCodec
from broker.errors import AuditError, KafkaForbidden, MalformedRecord
from broker.kafka.clients import consumer as new_consumer
from broker.kafka.clients import start_whole, stop_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.raw_fetch import fetch_raw
from broker.kafka.scan import metadata
from broker.schemas import SchemaStore, default_store

#: What one read may hold in memory at once (aiokafka's fetch buffers): the verifier's
#: memory bound depends on these, not on the size of the log.
FETCH_MAX_BYTES = 4 * 1024 * 1024
PARTITION_FETCH_BYTES = 1024 * 1024
BATCH_RECORDS = 2000


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One Kafka record as read: key (the enforcement point id), value bytes, position;
    or one leaf of a leaf pack (its offset is the pack's)."""

    key: str
    value: bytes
    partition: int
    offset: int
    #: the index the leaf pack this leaf came in gives it (None: a record of its own)
    claimed_index: int | None = None
    #: why this record is not read as leaves (a damaged leaf pack), for the verifier to say
    problem: str | None = None


def unpack(codec: PackCodec, record: TopicRecord) -> list[TopicRecord]:
    """A record as the leaves it holds: itself, unless it is a leaf pack."""
    if not codec.is_pack(record.value):
        return [record]
    try:
        pack = codec.decode(record.value)
    except MalformedRecord as exc:
        return [_damaged(record, str(exc))]
    if pack.enforcement_point != record.key:
        return [
            _damaged(
                record,
                f"audit leaf pack of {pack.enforcement_point!r} is keyed {record.key!r}",
            )
        ]
    return [
        TopicRecord(record.key, leaf, record.partition, record.offset, pack.first_index + i)
        for i, leaf in enumerate(pack.leaves)
    ]


def _damaged(record: TopicRecord, problem: str) -> TopicRecord:
    return TopicRecord(record.key, record.value, record.partition, record.offset, problem=problem)


def _consumer(kafka: KafkaConnection, timeout_ms: int) -> Any:
    return new_consumer(
        kafka,
        group_id=None,
        auto_offset_reset="earliest",
        request_timeout_ms=timeout_ms,
        isolation_level="read_committed",
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
    )


def _forbidden(kafka: KafkaConnection, topic: str) -> KafkaForbidden:
    return KafkaForbidden(
        f"{kafka.describe()} may not read {topic}: the audit topics are read by auditors "
        "only (and the checkpoints by witnesses); run this with an auditor's Kafka "
        "credentials (JCU_KAFKA_CONFIG)"
    )


async def _start(consumer: Any, kafka: KafkaConnection) -> None:
    from aiokafka.errors import KafkaError

    try:
        await start_whole(consumer)
    except KafkaError as exc:
        await stop_client(consumer)
        raise AuditError(
            f"cannot reach Kafka at {kafka.describe()}: {exc}; is it running?"
        ) from None
    except BaseException:  # cancelled half-way (the run ended first): nothing left open
        await stop_client(consumer)
        raise


@asynccontextmanager
async def _reading(
    kafka: KafkaConnection, topic: str, timeout_ms: int
) -> AsyncIterator[tuple[Any, Any]]:
    """A started consumer and the cluster's metadata for `topic`, which this principal may
    read; Kafka's refusals and failures inside said as one error each, the consumer
    stopped after."""
    from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

    consumer = _consumer(kafka, timeout_ms)
    await _start(consumer, kafka)
    try:
        cluster = await metadata(consumer, [topic])
        if topic in cluster.unauthorized_topics:
            raise TopicAuthorizationFailedError(topic)
        yield consumer, cluster
    except TopicAuthorizationFailedError:
        raise _forbidden(kafka, topic) from None
    except KafkaError as exc:
        raise AuditError(f"reading {topic} failed: {exc}") from None
    finally:
        await stop_client(consumer)


async def iter_topic(
    kafka: KafkaConnection,
    topic: str,
    *,
    start: Mapping[int, int] | None = None,
    partition: int | None = None,
    key: str | None = None,
    timeout_ms: int = 30000,
    missing_ok: bool = False,
    store: SchemaStore | None = None,
) -> AsyncIterator[list[TopicRecord]]:
    """Batches of the records of `topic` (or of one `partition`), each partition from its
    offset in `start` (default: its beginning) to its end offset when the read starts, so
    a live topic gives a consistent snapshot. `key` keeps one enforcement point's records.
    Leaf packs come as their leaves (`store` knows their schema; default: the
    configured one). Memory is bounded by the fetch sizes above, whatever the topic holds.
    """
    from aiokafka import TopicPartition

    codec = PackCodec(store if store is not None else default_store())
    # key -> digest of its previous record: a byte-identical re-send is dropped
    previous: dict[str, bytes] = {}
    async with _reading(kafka, topic, timeout_ms) as (consumer, cluster):
        known = cluster.partitions_for_topic(topic)
        if not known:
            if missing_ok:
                return
            raise AuditError(f"topic {topic} does not exist; create it with `jcu kafka topics`")
        wanted = sorted(known) if partition is None else [partition]
        tps = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        firsts = {tp: (start or {}).get(tp.partition, 0) for tp in tps}
        for tp in tps:
            consumer.seek(tp, firsts[tp])
        remaining = {tp for tp in tps if ends[tp] > firsts[tp]}
        if not remaining:
            # Nothing to read: one immediate fetch still asks the broker whether this
            # principal may read the topic, so an empty answer is never a wall's silence.
            await fetch_raw(consumer, tps[0], ends[tps[0]])
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=BATCH_RECORDS)
            out: list[TopicRecord] = []
            for tp, messages in batch.items():
                for m in messages:
                    if m.offset >= ends[tp]:
                        continue
                    k = m.key.decode("utf-8", "replace") if m.key is not None else ""
                    if key is not None and k != key:
                        continue
                    value = m.value or b""
                    digest = hashlib.sha256(value).digest()
                    if previous.get(k) == digest:
                        continue  # a byte-identical re-send (see the module's docstring)
                    previous[k] = digest
                    out.extend(unpack(codec, TopicRecord(k, value, tp.partition, m.offset)))
            if out:
                yield out
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)


async def read_topic(
    kafka: KafkaConnection,
    topic: str,
    *,
    partition: int | None = None,
    start_offset: int = 0,
    key: str | None = None,
    timeout_ms: int = 30000,
    missing_ok: bool = False,
    store: SchemaStore | None = None,
) -> list[TopicRecord]:
    """All records of `topic` (or one partition from `start_offset`), in partition order,
    leaf packs as their leaves: for topics that stay small (checkpoints), or one
    enforcement point's tail."""
    start = {partition: start_offset} if partition is not None else None
    out: list[TopicRecord] = []
    async for batch in iter_topic(
        kafka,
        topic,
        start=start,
        partition=partition,
        key=key,
        timeout_ms=timeout_ms,
        missing_ok=missing_ok,
        store=store,
    ):
        out.extend(batch)
    return out


async def end_offsets(
    kafka: KafkaConnection, topic: str, timeout_ms: int = 30000
) -> dict[int, int]:
    """Per partition of `topic`, the offset after its last record now ({} if no topic)."""
    from aiokafka import TopicPartition

    async with _reading(kafka, topic, timeout_ms) as (consumer, cluster):
        tps = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        return {tp.partition: int(o) for tp, o in ends.items()}
