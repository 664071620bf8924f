"""Registry snapshots on the compacted `jcu.registry` topic.

Anyone may carry a snapshot file there (`jcu registry publish`); the record key
is always `snapshot`, so compaction keeps the newest and a node reading the
topic from the beginning meets every snapshot still retained. What a node
believes is decided by `TrustedRegistry.offer`, never by the topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.errors import Rejected
from broker.kafka.clients import reliable_producer, start_client
from broker.kafka.scan import scan
from broker.kafka.topics import REGISTRY
from broker.logs import get_logger
from broker.trust.snapshot import TOPIC_KEY
from broker.trust.state import TrustedRegistry

_log = get_logger(__name__)


async def publish_snapshot(bootstrap: str, data: bytes, topic: str = REGISTRY) -> tuple[int, int]:
    """Produce one snapshot file's bytes; returns (partition, offset)."""
    producer = reliable_producer(bootstrap)
    await start_client(producer, bootstrap)
    try:
        meta = await (await producer.send(topic, value=data, key=TOPIC_KEY))
    finally:
        await producer.stop()
    return meta.partition, meta.offset


@dataclass
class CatchUp:
    """What reading the registry topic to its end did to a node's state."""

    read: int = 0
    accepted: list[int] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)


async def catch_up(bootstrap: str, trusted: TrustedRegistry, topic: str = REGISTRY) -> CatchUp:
    """Offer every snapshot on the topic, oldest first; refusals are logged and kept."""
    result = CatchUp()
    async for r in scan(bootstrap, [topic]):
        result.read += 1
        if r.value is None:
            result.refused.append(("tombstone", "an unsigned tombstone proves nothing"))
            continue
        try:
            accepted = trusted.offer(r.value)
        except Rejected as exc:
            result.refused.append((exc.reason, str(exc)))
            _log.warning(
                "registry record refused", reason=exc.reason, offset=r.offset, error=str(exc)
            )
            continue
        if accepted is not None:
            result.accepted.append(accepted.epoch)
    return result
