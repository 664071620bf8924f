"""Reading the audit topics back: every record up to the end offsets seen at the start."""

from __future__ import annotations

from dataclasses import dataclass

from broker.errors import AuditError


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One Kafka record as read: key (the enforcement point id), value bytes, position."""

    key: str
    value: bytes
    partition: int
    offset: int


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    partition: int | None = None,
    start_offset: int = 0,
    key: str | None = None,
    timeout_ms: int = 30000,
) -> list[TopicRecord]:
    """All records of `topic` (or one partition from `start_offset`), in partition order.

    Reads up to the end offsets taken when the read starts, so a live topic
    gives a consistent snapshot. `key` keeps only one enforcement point's records.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        request_timeout_ms=timeout_ms,
        isolation_level="read_committed",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise AuditError(f"cannot reach Kafka at {bootstrap}: {exc}; is it running?") from None
    out: list[TopicRecord] = []
    try:
        # The consumer's public topics() fetches this same metadata but drops the partitions.
        cluster = await consumer._client.fetch_all_metadata()
        known = cluster.partitions_for_topic(topic)
        if not known:
            raise AuditError(f"topic {topic} does not exist; create it with `jcu init`")
        wanted = sorted(known) if partition is None else [partition]
        tps = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        first = start_offset if partition is not None else 0
        for tp in tps:
            consumer.seek(tp, first)
        remaining = {tp for tp in tps if ends[tp] > first}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in batch.items():
                for m in messages:
                    if m.offset >= ends[tp]:
                        continue
                    k = m.key.decode("utf-8", "replace") if m.key is not None else ""
                    if key is None or k == key:
                        out.append(TopicRecord(k, m.value or b"", tp.partition, m.offset))
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    except KafkaError as exc:
        raise AuditError(f"reading {topic} failed: {exc}") from None
    finally:
        await consumer.stop()
    return out
