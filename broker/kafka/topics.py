"""Topic names (a contract: ACLs, tools and tests rely on them) and their creation.

Topics are created explicitly (by `jcu init`), never by a producer's first
write: the local broker runs with auto-creation off, as production should.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from broker.kafka.clients import start_client
from broker.vocabulary import COMMUNITIES, STREAMS

AUDIT_DECISIONS = "jcu.audit.decisions"
AUDIT_CHECKPOINTS = "jcu.audit.checkpoints"
REGISTRY = "jcu.registry"
CONTROL = "jcu.control"
DLQ = "jcu.dlq"


def community_topic(community: str, stream: str, *, exercise: bool = False) -> str:
    if community not in COMMUNITIES:
        raise ValueError(f"unknown community {community!r}")
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    prefix = "jcu.exercise." if exercise else "jcu."
    return f"{prefix}{community}.{stream}"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int = 3
    replication: int = 1
    configs: dict[str, str] = field(default_factory=dict)


def contract_topics(
    *, partitions: int = 3, replication: int = 1, exercise: bool = True
) -> list[TopicSpec]:
    """Every topic of the contract in DESIGN.md, with its configuration."""
    specs = [
        TopicSpec(community_topic(c, s), partitions, replication)
        for c in COMMUNITIES
        for s in STREAMS
    ]
    if exercise:
        specs += [
            TopicSpec(community_topic(c, s, exercise=True), 1, replication)
            for c in COMMUNITIES
            for s in STREAMS
        ]
    compacted = {"cleanup.policy": "compact"}
    forever = {"retention.ms": "-1", "retention.bytes": "-1"}
    specs += [
        # One partition each: audit order per enforcement point is the tree order.
        # The audit log is evidence: never deleted by retention (verification needs it whole).
        TopicSpec(AUDIT_DECISIONS, 1, replication, dict(forever)),
        TopicSpec(AUDIT_CHECKPOINTS, 1, replication, dict(forever)),
        TopicSpec(REGISTRY, 1, replication, dict(compacted)),
        TopicSpec(CONTROL, 1, replication, dict(compacted)),
        TopicSpec(DLQ, 1, replication),
    ]
    return specs


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    wanted = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await start_client(admin, bootstrap)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        name=s.name,
                        num_partitions=s.partitions,
                        replication_factor=s.replication,
                        topic_configs=s.configs,
                    )
                    for s in missing
                ]
            )
            await _await_leaders(admin, [s.name for s in missing])
        return [s.name for s in missing]
    finally:
        await admin.close()


async def _await_leaders(admin: Any, names: list[str], timeout: float = 30.0) -> None:
    """Wait until every partition of the new topics has a leader, so first writes succeed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = await admin.describe_topics(names)
        if all(
            t.get("error_code", 0) == 0
            and t["partitions"]
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        await asyncio.sleep(0.1)
