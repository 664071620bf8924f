"""The synthetic load the Kafka benches share: who receives, how big a publish batch is,
what an indicator looks like, and how a bench reads progress and CPU off this machine.

One definition, so that the pipeline, latency, scaling and memory benches measure the
same messages and their figures can be set side by side.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

    from broker.kafka.connection import KafkaConnection

#: Five recipients: the pipeline bench's fan-out.
RECIPIENTS = ("enisa", "cert-eu", "csirts-network", "eu-cyclone", "commission")
#: Messages per `publish_many` call, as `jcu publish` batches them.
CHUNK = 200


def indicator(i: int, prefix: str = "c2", padding: int = 870) -> dict[str, Any]:
    """Indicator payload number `i` (its domain `{prefix}-{i}.example.net`, which a bench
    can read back from the sink); `padding` 870 makes about 1 KiB encoded."""
    domain = f"{prefix}-{i}.example.net"
    return {
        "id": str(uuid.uuid4()),
        "observable_type": "domain-name",
        "value": domain,
        "pattern": f"[domain-name:value = '{domain}']",
        "pattern_type": "stix",
        "description": "x" * padding,
        "valid_from": datetime.now(UTC),
        "confidence": 70,
    }


def count_lines(path: Path) -> int:
    """Lines in `path` so far (0 before it exists), read in 1 MiB chunks."""
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (Linux /proc); 0 if not ours to see."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_consumer(kafka: KafkaConnection, topic: str) -> AIOKafkaConsumer:
    """A bare aiokafka consumer of `topic` from its start, with the subscriber's fetch
    settings: the raw legs' baseline."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        topic,
        **kafka.client_options(),
        group_id=f"bench-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=16 * 1024 * 1024,  # the subscriber's settings
    )
