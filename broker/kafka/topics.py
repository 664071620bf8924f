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
AUDIT_COSIGNATURES = "jcu.audit.cosignatures"
REGISTRY = "jcu.registry"
CONTROL = "jcu.control"
DLQ = "jcu.dlq"
#: The capability inventory: one compacted record per entry, keyed `<owner>/<entry id>`,
#: sealed by its owner for the organisations the policy lets see it (everyone reads the
#: topic; each owner writes its own keys).
CAPABILITIES = "jcu.capabilities"


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
    """Every topic of the contract in DESIGN.md, with its configuration.

    Data topics are stamped with the broker's append time (LogAppendTime): receivers
    judge backdating and compromised-key revocations against the broker's clock,
    never against the time a sender signed.
    """
    stamped = {"message.timestamp.type": "LogAppendTime"}
    specs = [
        TopicSpec(community_topic(c, s), partitions, replication, dict(stamped))
        for c in COMMUNITIES
        for s in STREAMS
    ]
    if exercise:
        specs += [
            TopicSpec(community_topic(c, s, exercise=True), 1, replication, dict(stamped))
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
        # Witnesses' cosignatures of checkpoints (broker.audit.witness): evidence too.
        TopicSpec(AUDIT_COSIGNATURES, 1, replication, dict(forever)),
        TopicSpec(REGISTRY, 1, replication, dict(compacted)),
        TopicSpec(CONTROL, 1, replication, dict(compacted)),
        TopicSpec(DLQ, 1, replication),
        # Stamped as data topics are: a reader judges backdated entries by the broker's clock.
        TopicSpec(CAPABILITIES, 1, replication, {**compacted, **stamped}),
    ]
    return specs


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet, and give existing ones the contract's
    configuration where it differs; return the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    wanted = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await start_client(admin, bootstrap)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        await _align_configs(admin, [s for s in wanted if s.name in existing])
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


async def _align_configs(admin: Any, specs: list[TopicSpec]) -> list[str]:
    """Set the contract's topic configs on existing topics whose values differ (a topic made
    before a config joined the contract). Returns the names changed."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    specs = [s for s in specs if s.configs]
    if not specs:
        return []
    described = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, s.name, dict(s.configs)) for s in specs]
    )
    current: dict[str, dict[str, str]] = {}
    for response in described:
        for resource in response.resources:
            _error, _message, _type, name, entries = resource[:5]
            current[name] = {e[0]: e[1] for e in entries}
    stale = [
        s for s in specs if any(current.get(s.name, {}).get(k) != v for k, v in s.configs.items())
    ]
    if stale:
        # AlterConfigs sets a topic's whole dynamic configuration: the spec is all of it.
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, s.name, dict(s.configs)) for s in stale]
        )
    return [s.name for s in stale]


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
