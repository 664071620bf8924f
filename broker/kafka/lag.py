"""How far behind each consumer group is, in records and in seconds.

Records: the end offset minus the group's committed offset, per partition; a
partition of a topic the group reads that it never committed on counts from the
partition's start (what a new member would read), not as 0.
Seconds: how long ago the broker appended the oldest record the group has not
consumed yet (0 when it has consumed everything). That is the figure an
operator acts on: a group 10,000 records behind on a busy topic may be two
seconds late, one record behind on a quiet one may be an hour late.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broker.kafka.clients import admin_client, consumer, start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import partitions


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    #: when the broker appended the oldest record not yet consumed (None when caught up)
    oldest_unconsumed: datetime | None
    #: False when the group never committed here: `committed` is the partition's start
    has_commit: bool = True

    @property
    def records(self) -> int:
        return max(0, self.end - self.committed)

    def seconds(self, now: datetime) -> float:
        if self.records == 0 or self.oldest_unconsumed is None:
            return 0.0
        return max(0.0, (now - self.oldest_unconsumed).total_seconds())


@asynccontextmanager
async def _admin_and_reader(kafka: KafkaConnection) -> AsyncIterator[tuple[Any, Any]]:
    """An admin client and a plain consumer, started, and both closed on the way out (the
    admin also when the consumer fails to start): what reading offsets takes."""
    admin = admin_client(kafka)
    await start_client(admin, kafka)
    try:
        reader = consumer(kafka)
        await start_client(reader, kafka)
        try:
            yield admin, reader
        finally:
            await reader.stop()
    finally:
        await admin.close()


async def group_lag(kafka: KafkaConnection, prefix: str = "jcu.") -> list[PartitionLag]:
    """Every committed partition of a topic named `prefix...` of every consumer group this
    principal may describe (groups are named `<participant>.<channel>`): the platform's
    operator sees them all."""
    async with _admin_and_reader(kafka) as (admin, reader):
        committed: dict[str, dict[Any, int]] = {}
        for g in sorted(g[0] for g in await admin.list_consumer_groups()):
            offsets = await admin.list_consumer_group_offsets(g)
            ours = {
                tp: m.offset
                for tp, m in offsets.items()
                if m.offset >= 0 and tp.topic.startswith(prefix)
            }
            if ours:
                committed[g] = ours
        groups = sorted(committed)
        # Every partition of the topics a group reads, committed on or not.
        topics = sorted({tp.topic for c in committed.values() for tp in c})
        tps = sorted(await partitions(reader, topics)) if topics else []
        ends = await reader.end_offsets(tps) if tps else {}
        starts = await reader.beginning_offsets(tps) if tps else {}
        positions: dict[str, dict[Any, tuple[int, bool]]] = {}
        for g in groups:
            mine = {tp.topic for tp in committed[g]}
            positions[g] = {
                tp: (committed[g][tp], True) if tp in committed[g] else (starts[tp], False)
                for tp in tps
                if tp.topic in mine
            }
        behind = sorted(
            {(tp, off) for p in positions.values() for tp, (off, _) in p.items() if ends[tp] > off}
        )
        appended = {(tp, off): await _append_time(reader, tp, off) for tp, off in behind}
        return [
            PartitionLag(
                g, tp.topic, tp.partition, off, ends[tp], appended.get((tp, off)), has_commit
            )
            for g in groups
            for tp, (off, has_commit) in sorted(positions[g].items())
        ]


async def _append_time(consumer: Any, tp: Any, offset: int) -> datetime | None:
    """The broker time of the record at `offset` of `tp` (the next one, if compacted away)."""
    consumer.assign([tp])
    consumer.seek(tp, offset)
    batch = await consumer.getmany(tp, timeout_ms=2000, max_records=1)
    for records in batch.values():
        for r in records:
            if r.timestamp is not None:
                return datetime.fromtimestamp(r.timestamp / 1000, UTC)
    return None


async def offsets_now(
    kafka: KafkaConnection, prefix: str = "jcu."
) -> tuple[dict[str, int], dict[str, int]]:
    """Per topic, its end offsets summed; per group, its committed offsets summed (what
    two calls some seconds apart make rates of: appended and consumed per second)."""
    async with _admin_and_reader(kafka) as (admin, reader):
        topics = sorted(t for t in await reader.topics() if t.startswith(prefix))
        tps = await partitions(reader, topics)
        ends = await reader.end_offsets(tps) if tps else {}
        appended: dict[str, int] = dict.fromkeys(topics, 0)
        for tp, end in ends.items():
            appended[tp.topic] += end
        consumed: dict[str, int] = {}
        for g in sorted(g[0] for g in await admin.list_consumer_groups()):
            offsets = await admin.list_consumer_group_offsets(g)
            ours = [m.offset for tp, m in offsets.items() if m.offset >= 0 and tp in ends]
            if ours:
                consumed[g] = sum(ours)
        return appended, consumed
