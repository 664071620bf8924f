"""How far behind each consumer group is, in records and in seconds.

Records: the end offset minus the group's committed offset, per partition.
Seconds: how long ago the broker appended the oldest record the group has not
consumed yet (0 when it has consumed everything). That is the figure an
operator acts on: a group 10,000 records behind on a busy topic may be two
seconds late, one record behind on a quiet one may be an hour late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broker.kafka.clients import start_client


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    #: when the broker appended the oldest record not yet consumed (None when caught up)
    oldest_unconsumed: datetime | None

    @property
    def records(self) -> int:
        return max(0, self.end - self.committed)

    def seconds(self, now: datetime) -> float:
        if self.records == 0 or self.oldest_unconsumed is None:
            return 0.0
        return max(0.0, (now - self.oldest_unconsumed).total_seconds())


async def group_lag(bootstrap: str, prefix: str = "jcu.") -> list[PartitionLag]:
    """Every committed partition of every consumer group named `prefix...`."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await start_client(admin, bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await start_client(consumer, bootstrap)
    except BaseException:
        await admin.close()
        raise
    try:
        groups = sorted(g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix))
        committed: dict[str, dict[Any, int]] = {}
        for g in groups:
            offsets = await admin.list_consumer_group_offsets(g)
            committed[g] = {tp: m.offset for tp, m in offsets.items() if m.offset >= 0}
        tps = sorted({tp for c in committed.values() for tp in c})
        ends = await consumer.end_offsets(tps) if tps else {}
        behind = sorted(
            {(tp, off) for c in committed.values() for tp, off in c.items() if ends[tp] > off}
        )
        appended = {(tp, off): await _append_time(consumer, tp, off) for tp, off in behind}
        return [
            PartitionLag(g, tp.topic, tp.partition, off, ends[tp], appended.get((tp, off)))
            for g in groups
            for tp, off in sorted(committed[g].items())
        ]
    finally:
        await consumer.stop()
        await admin.close()


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
