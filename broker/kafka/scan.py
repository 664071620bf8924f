"""Reading whole topics from the beginning to where they end now.

Operator tools (receipts, stats, crisis state) need "everything on these
topics so far", not a consumer group: they assign every partition, seek to
the beginning and stop at the end offsets taken at the start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from broker.errors import KafkaForbidden
from broker.kafka.clients import consumer, start_client
from broker.kafka.connection import KafkaConnection


async def metadata(consumer: Any, topics: Iterable[str]) -> Any:
    """Fresh cluster metadata for the `topics` named: the broker then says which of them this
    principal may not see (`unauthorized_topics`), instead of leaving them out."""
    from aiokafka.cluster import ClusterMetadata
    from aiokafka.errors import KafkaError

    # aiokafka offers no public "metadata of topics X": its client's `_metadata_update` is
    # the call `fetch_all_metadata()` and the consumer's own refreshes make.
    cluster = ClusterMetadata()
    if not await consumer._client._metadata_update(cluster, list(topics)):
        raise KafkaError("no broker answered a metadata request")
    return cluster


async def partitions(consumer: Any, topics: Iterable[str]) -> list[Any]:
    """Every partition of those `topics` that exist, from fresh cluster metadata; a topic
    this principal may not describe is a `KafkaForbidden`, not a missing topic."""
    from aiokafka.structs import TopicPartition

    wanted = list(topics)
    if not wanted:
        return []
    cluster = await metadata(consumer, wanted)
    denied = sorted(set(wanted) & set(cluster.unauthorized_topics))
    if denied:
        raise KafkaForbidden(
            f"this Kafka principal may not read {', '.join(denied)} (the cluster's ACLs)"
        )
    return [
        TopicPartition(t, p) for t in wanted for p in sorted(cluster.partitions_for_topic(t) or ())
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
    from aiokafka.errors import TopicAuthorizationFailedError

    end = await consumer.end_offsets(tps)
    while True:
        behind = [tp for tp in tps if await consumer.position(tp) < end[tp]]
        if not behind:
            return
        try:
            batch = await consumer.getmany(*behind, timeout_ms=1000)
        except TopicAuthorizationFailedError:
            topics = ", ".join(sorted({tp.topic for tp in behind}))
            raise KafkaForbidden(
                f"this Kafka principal may not read {topics} (the cluster's ACLs)"
            ) from None
        for records in batch.values():
            for r in records:
                if r.offset < end[_tp(r)]:
                    yield r


def _tp(record: Any) -> Any:
    from aiokafka.structs import TopicPartition

    return TopicPartition(record.topic, record.partition)


async def scan(kafka: KafkaConnection, topics: Iterable[str]) -> AsyncIterator[Any]:
    """Every record on `topics`, oldest first per partition, up to the end as of now."""
    client = consumer(kafka)
    await start_client(client, kafka)
    try:
        tps = await assign_all(client, topics)
        async for r in read_to_end(client, tps):
            yield r
    finally:
        await client.stop()
