"""Reading whole topics from the beginning to where they end now.

Operator tools (receipts, stats, crisis state) need "everything on these
topics so far", not a consumer group: they assign every partition, seek to
the beginning and stop at the end offsets taken at the start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from broker.kafka.clients import start_client


async def partitions(consumer: Any, topics: Iterable[str]) -> list[Any]:
    """Every partition of those `topics` that exist, from fresh cluster metadata."""
    from aiokafka.structs import TopicPartition

    # aiokafka offers no public "partitions of topic X" that fetches fresh metadata;
    # its client's fetch_all_metadata() is the call `consumer.topics()` makes.
    cluster = await consumer._client.fetch_all_metadata()
    return [
        TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())
    ]


async def assign_all(consumer: Any, topics: Iterable[str]) -> list[Any]:
    """Assign every partition of the existing `topics` from their beginning."""
    tps = await partitions(consumer, topics)
    if tps:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
    return tps


async def read_to_end(consumer: Any, tps: list[Any]) -> AsyncIterator[Any]:
    """Yield records of the assigned `tps` up to their end offsets as of now."""
    if not tps:
        return
    end = await consumer.end_offsets(tps)
    while True:
        behind = [tp for tp in tps if await consumer.position(tp) < end[tp]]
        if not behind:
            return
        batch = await consumer.getmany(*behind, timeout_ms=1000)
        for records in batch.values():
            for r in records:
                if r.offset < end[_tp(r)]:
                    yield r


def _tp(record: Any) -> Any:
    from aiokafka.structs import TopicPartition

    return TopicPartition(record.topic, record.partition)


async def scan(bootstrap: str, topics: Iterable[str]) -> AsyncIterator[Any]:
    """Every record on `topics`, oldest first per partition, up to the end as of now."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await start_client(consumer, bootstrap)
    try:
        tps = await assign_all(consumer, topics)
        async for r in read_to_end(consumer, tps):
            yield r
    finally:
        await consumer.stop()
