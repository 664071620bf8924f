"""Reading the audit topics back: every record up to the end offsets seen at the start.

A record read twice with the same key and the same bytes is kept once: an
enforcement point that restarts after a crash re-sends the leaves it cannot
know Kafka kept (it may not read the audit topics: docs/deployment.md), and a
byte-identical copy adds nothing and hides nothing (its index, links and
decision ids are those of the first).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from broker.errors import AuditError, KafkaForbidden
from broker.kafka._raw_fetch import fetch_raw
from broker.kafka.clients import consumer as new_consumer
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import metadata


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One Kafka record as read: key (the enforcement point id), value bytes, position."""

    key: str
    value: bytes
    partition: int
    offset: int


async def read_topic(
    kafka: KafkaConnection,
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
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

    consumer = new_consumer(
        kafka,
        group_id=None,
        auto_offset_reset="earliest",
        request_timeout_ms=timeout_ms,
        isolation_level="read_committed",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise AuditError(
            f"cannot reach Kafka at {kafka.describe()}: {exc}; is it running?"
        ) from None
    out: list[TopicRecord] = []
    seen: set[bytes] = set()
    try:
        cluster = await metadata(consumer, [topic])
        if topic in cluster.unauthorized_topics:
            raise TopicAuthorizationFailedError(topic)
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
        if not remaining:
            # Nothing to read: one immediate fetch still asks the broker whether this
            # principal may read the topic, so an empty answer is never a wall's silence.
            await fetch_raw(consumer, tps[0], ends[tps[0]])
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in batch.items():
                for m in messages:
                    if m.offset >= ends[tp]:
                        continue
                    k = m.key.decode("utf-8", "replace") if m.key is not None else ""
                    if key is not None and k != key:
                        continue
                    value = m.value or b""
                    copy = hashlib.sha256(len(k).to_bytes(4, "big") + k.encode() + value).digest()
                    if copy in seen:
                        continue  # a byte-identical re-send (see the module's docstring)
                    seen.add(copy)
                    out.append(TopicRecord(k, value, tp.partition, m.offset))
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    except TopicAuthorizationFailedError:
        raise KafkaForbidden(
            f"{kafka.describe()} may not read {topic}: the audit topics are read by auditors "
            "only; run this with an auditor's Kafka credentials (JCU_KAFKA_CONFIG)"
        ) from None
    except KafkaError as exc:
        raise AuditError(f"reading {topic} failed: {exc}") from None
    finally:
        await consumer.stop()
    return out
