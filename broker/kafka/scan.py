"""Reading whole topics from the beginning to where they end now.

Operator tools (receipts, stats, crisis state) need "everything on these
topics so far", not a consumer group: they assign every partition, seek to
the beginning and stop at the end offsets taken at the start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from broker.errors import KafkaForbidden
from broker.kafka.clients import consumer, start_client, stop_client
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


async def assign_all(consumer: Any, topics: Iterable[str]) -> dict[Any, int]:
    """Assign every partition of the existing `topics` from their beginning; their end
    offsets as of now, by partition (empty: none of the topics exists).

    The end offsets are asked for while the partitions are paused: a consumer long-polls
    a partition it may fetch, and the broker answers a connection's requests in order, so
    on a quiet topic the request would wait out the poll (fetch.max.wait.ms, 0.5 s).
    """
    tps = await partitions(consumer, topics)
    if not tps:
        return {}
    consumer.assign(tps)
    consumer.pause(*tps)
    # At once after `assign`: before the consumer resets the new positions on its own.
    await consumer.seek_to_beginning(*tps)
    end: dict[Any, int] = await consumer.end_offsets(tps)
    consumer.resume(*tps)
    return end


async def read_to_end(consumer: Any, end: Mapping[Any, int]) -> AsyncIterator[Any]:
    """Yield records of the assigned partitions up to their `end` offsets (`assign_all`)."""
    if not end:
        return
    from aiokafka.errors import TopicAuthorizationFailedError

    while True:
        behind = [tp for tp, last in end.items() if await consumer.position(tp) < last]
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
        end = await assign_all(client, topics)
        async for r in read_to_end(client, end):
            yield r
    finally:
        await stop_client(client)
