"""The producer every jcu component writes with: nothing lost, nothing doubled, in order.

Idempotent with acks=all (a retried batch is written once, per-partition order
kept), zstd compression, and batches large enough that one partition (the
audit topic has one) is not throttled by round trips.
"""

from __future__ import annotations

import contextlib
from typing import Any

from broker.errors import KafkaUnavailable

#: zstd, not lz4: aiokafka always compresses lz4 at level 9 (LZ4 HC), which costs
#: ~16 µs per 2 KB envelope here; zstd's default level is ~5x faster on our
#: batches and compresses the audit leaves twice as well (bench/README.md).
COMPRESSION = "zstd"


def reliable_producer(bootstrap: str, **overrides: Any) -> Any:
    """An unstarted AIOKafkaProducer with the house settings; `overrides` win."""
    from aiokafka import AIOKafkaProducer

    settings: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "compression_type": COMPRESSION,
        "linger_ms": 5,
        "max_batch_size": 512 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        "request_timeout_ms": 30000,
    }
    settings.update(overrides)
    return AIOKafkaProducer(**settings)


async def start_client(client: Any, bootstrap: str) -> None:
    """Start an aiokafka producer, consumer or admin client; if Kafka does not answer,
    close it again and raise one clear `KafkaUnavailable`."""
    from aiokafka.errors import KafkaError

    try:
        await client.start()
    except KafkaError as exc:
        close = getattr(client, "stop", None) or client.close
        with contextlib.suppress(Exception):
            await close()
        raise KafkaUnavailable(
            f"cannot reach Kafka at {bootstrap} ({exc}); start one with `jcu kafka up` "
            "or set KAFKA_BOOTSTRAP"
        ) from None
