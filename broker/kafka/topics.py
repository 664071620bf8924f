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

from broker.errors import KafkaForbidden, KafkaRuntimeError
from broker.kafka.clients import admin_client, start_client
from broker.kafka.connection import KafkaConnection
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
    """Every topic of the contract (docs/contracts.md), with its configuration.

    Data topics are stamped with the broker's append time (LogAppendTime): receivers
    judge backdating and compromised-key revocations against the broker's clock,
    never against the time a sender signed. With `replication` 3 or more, every
    topic asks two in-sync replicas for a write (producers use acks=all).
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
    if replication >= 3:
        # A write is acknowledged once two replicas hold it: one broker may fail at any time.
        for spec in specs:
            spec.configs["min.insync.replicas"] = "2"
    return specs


async def ensure_topics(kafka: KafkaConnection, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet, and give existing ones the contract's
    configuration where it differs; return the names created."""
    from aiokafka.admin import NewTopic

    wanted = list(specs)
    admin = admin_client(kafka)
    await start_client(admin, kafka)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        await _align_configs(kafka, admin, [s for s in wanted if s.name in existing])
        if missing:
            response = await admin.create_topics(
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
            _raise_errors(kafka, "create", [(t[0], t[1]) for t in response.topic_errors])
            await _await_leaders(admin, [s.name for s in missing])
        return [s.name for s in missing]
    finally:
        await admin.close()


def _raise_errors(kafka: KafkaConnection, what: str, results: list[tuple[str, int]]) -> None:
    """Turn the per-topic error codes of an admin response into one clear error."""
    from aiokafka.errors import (
        ClusterAuthorizationFailedError,
        TopicAlreadyExistsError,
        TopicAuthorizationFailedError,
        for_code,
    )

    failed = [(name, for_code(code)) for name, code in results if code]
    failed = [(n, e) for n, e in failed if e is not TopicAlreadyExistsError]
    if not failed:
        return
    names = ", ".join(sorted(n for n, _ in failed))
    walls = (TopicAuthorizationFailedError, ClusterAuthorizationFailedError)
    if any(e in walls for _, e in failed):
        raise KafkaForbidden(
            f"{kafka.describe()} may not {what} topic(s) {names}: only the platform admin "
            "creates, deletes and alters topics (JCU_KAFKA_CONFIG pointing at its client file)"
        )
    raise KafkaRuntimeError(
        f"Kafka refused to {what} {names}: {', '.join(sorted({e.__name__ for _, e in failed}))}"
    )


async def _align_configs(kafka: KafkaConnection, admin: Any, specs: list[TopicSpec]) -> list[str]:
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
    errors: list[tuple[str, int]] = []
    for response in described:
        for resource in response.resources:
            error, _message, _type, name, entries = resource[:5]
            errors.append((name, error))
            current[name] = {e[0]: e[1] for e in entries}
    _raise_errors(kafka, "describe the configuration of", errors)
    stale = [
        s for s in specs if any(current.get(s.name, {}).get(k) != v for k, v in s.configs.items())
    ]
    if stale:
        # AlterConfigs sets a topic's whole dynamic configuration: the spec is all of it.
        altered = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, s.name, dict(s.configs)) for s in stale]
        )
        _raise_errors(
            kafka,
            "alter the configuration of",
            [(r[3], r[0]) for response in altered for r in response.resources],
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
