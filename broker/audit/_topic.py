"""Reading the audit topics back: up to the end offsets seen at the start, whole or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from broker.errors import AuditError

#: What one read may hold in memory at once (aiokafka's fetch buffers): the verifier's
#: memory bound depends on these, not on the size of the log.
FETCH_MAX_BYTES = 4 * 1024 * 1024
PARTITION_FETCH_BYTES = 1024 * 1024
BATCH_RECORDS = 2000


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One Kafka record as read: key (the enforcement point id), value bytes, position."""

    key: str
    value: bytes
    partition: int
    offset: int


def _consumer(bootstrap: str, timeout_ms: int) -> Any:
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        request_timeout_ms=timeout_ms,
        isolation_level="read_committed",
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
    )


async def iter_topic(
    bootstrap: str,
    topic: str,
    *,
    start: Mapping[int, int] | None = None,
    partition: int | None = None,
    key: str | None = None,
    timeout_ms: int = 30000,
    missing_ok: bool = False,
) -> AsyncIterator[list[TopicRecord]]:
    """Batches of the records of `topic` (or of one `partition`), each partition from its
    offset in `start` (default: its beginning) to its end offset when the read starts, so
    a live topic gives a consistent snapshot. `key` keeps one enforcement point's records.
    Memory is bounded by the fetch sizes above, whatever the topic holds.
    """
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    consumer = _consumer(bootstrap, timeout_ms)
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise AuditError(f"cannot reach Kafka at {bootstrap}: {exc}; is it running?") from None
    try:
        # The consumer's public topics() fetches this same metadata but drops the partitions.
        cluster = await consumer._client.fetch_all_metadata()
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
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=BATCH_RECORDS)
            out: list[TopicRecord] = []
            for tp, messages in batch.items():
                for m in messages:
                    if m.offset >= ends[tp]:
                        continue
                    k = m.key.decode("utf-8", "replace") if m.key is not None else ""
                    if key is None or k == key:
                        out.append(TopicRecord(k, m.value or b"", tp.partition, m.offset))
            if out:
                yield out
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    except KafkaError as exc:
        raise AuditError(f"reading {topic} failed: {exc}") from None
    finally:
        await consumer.stop()


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    partition: int | None = None,
    start_offset: int = 0,
    key: str | None = None,
    timeout_ms: int = 30000,
    missing_ok: bool = False,
) -> list[TopicRecord]:
    """All records of `topic` (or one partition from `start_offset`), in partition order:
    for topics that stay small (checkpoints), or a writer's own tail."""
    start = {partition: start_offset} if partition is not None else None
    out: list[TopicRecord] = []
    async for batch in iter_topic(
        bootstrap,
        topic,
        start=start,
        partition=partition,
        key=key,
        timeout_ms=timeout_ms,
        missing_ok=missing_ok,
    ):
        out.extend(batch)
    return out


async def end_offsets(bootstrap: str, topic: str, timeout_ms: int = 30000) -> dict[int, int]:
    """Per partition of `topic`, the offset after its last record now ({} if no topic)."""
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    consumer = _consumer(bootstrap, timeout_ms)
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise AuditError(f"cannot reach Kafka at {bootstrap}: {exc}; is it running?") from None
    try:
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        return {tp.partition: int(o) for tp, o in ends.items()}
    except KafkaError as exc:
        raise AuditError(f"reading {topic} failed: {exc}") from None
    finally:
        await consumer.stop()
