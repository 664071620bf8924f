"""Publishing the signed participant records on the compacted `jcu.registry` topic.

The bytes are exactly the signed files under $JCU_HOME/registry (Avro
ParticipantRecord + the registry authority's signature), keyed by participant
id, so compaction keeps each participant's latest record and any reader can
verify them against the authority key.
"""

from __future__ import annotations

from pathlib import Path

from broker.kafka.clients import reliable_producer, start_client
from broker.kafka.topics import REGISTRY


async def publish_registry(bootstrap: str, registry_dir: Path, topic: str = REGISTRY) -> int:
    """Produce every `<participant>.avro` record; returns how many were written."""
    records = sorted(registry_dir.glob("*.avro"))
    producer = reliable_producer(bootstrap)
    await start_client(producer, bootstrap)
    try:
        futures = [
            await producer.send(topic, value=path.read_bytes(), key=path.stem.encode())
            for path in records
        ]
        for f in futures:
            await f
    finally:
        await producer.stop()
    return len(records)


async def publish_record(
    bootstrap: str, participant: str, data: bytes, topic: str = REGISTRY
) -> None:
    """Produce one participant's signed record (after a rotation or revocation)."""
    producer = reliable_producer(bootstrap)
    await start_client(producer, bootstrap)
    try:
        await (await producer.send(topic, value=data, key=participant.encode()))
    finally:
        await producer.stop()
