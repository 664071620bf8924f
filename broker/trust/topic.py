"""Registry snapshots on the compacted `jcu.registry` topic.

The registry authority's principal carries a snapshot file there (`jcu registry
publish`; the Kafka ACLs let no one else write it); the record key
is always `snapshot`, so compaction keeps the newest and a node reading the
topic from the beginning meets every snapshot still retained. What a node
believes is decided by `TrustedRegistry.offer`, never by the topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.errors import OlderEpoch, Rejected
from broker.kafka.clients import reliable_producer, start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import scan
from broker.kafka.topics import REGISTRY
from broker.logs import get_logger
from broker.trust.snapshot import TOPIC_KEY, VerifiedSnapshot
from broker.trust.state import TrustedRegistry

_log = get_logger(__name__)


async def publish_snapshot(
    kafka: KafkaConnection, data: bytes, topic: str = REGISTRY
) -> tuple[int, int]:
    """Produce one snapshot file's bytes; returns (partition, offset). The Kafka ACLs let
    only the registry authority's principal write the topic."""
    producer = reliable_producer(kafka)
    await start_client(producer, kafka)
    try:
        meta = await (await producer.send(topic, value=data, key=TOPIC_KEY))
    finally:
        await producer.stop()
    return meta.partition, meta.offset


class InTopicOrder:
    """Offers the snapshots of `jcu.registry` to a node in the order the topic holds them.

    Read from the beginning, the topic first holds the history: epochs older than the
    one the node holds, published before it (until compaction removes them). Those are
    skipped quietly. Once the node's own epoch (or a newer one) has gone by, an older
    epoch can only be a replay, written after it: that is refused, logged and counted.
    """

    def __init__(self, trusted: TrustedRegistry) -> None:
        self._trusted = trusted
        self.at_head = trusted.current is None

    def offer(self, data: bytes) -> VerifiedSnapshot | None:
        try:
            accepted = self._trusted.offer(data)
        except OlderEpoch:
            if self.at_head:
                raise
            _log.debug("older registry snapshot passed over", held=self._trusted.epoch)
            return None
        self.at_head = True
        return accepted


@dataclass
class CatchUp:
    """What reading the registry topic to its end did to a node's state."""

    read: int = 0
    accepted: list[int] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)


async def catch_up(
    kafka: KafkaConnection, trusted: TrustedRegistry, topic: str = REGISTRY
) -> CatchUp:
    """Offer every snapshot on the topic, oldest first; refusals are logged and kept."""
    result = CatchUp()
    order = InTopicOrder(trusted)
    async for r in scan(kafka, [topic]):
        result.read += 1
        if r.value is None:
            result.refused.append(("tombstone", "an unsigned tombstone proves nothing"))
            continue
        try:
            accepted = order.offer(r.value)
        except Rejected as exc:
            result.refused.append((exc.reason, str(exc)))
            _log.warning(
                "registry record refused", reason=exc.reason, offset=r.offset, error=str(exc)
            )
            continue
        if accepted is not None:
            result.accepted.append(accepted.epoch)
    if not order.at_head:
        _log.warning(
            "the registry topic holds no snapshot as new as the one this node holds",
            topic=topic,
            epoch=trusted.epoch,
        )
    return result
