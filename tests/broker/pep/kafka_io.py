"""What pipeline tests do on the real broker again and again: write raw records, drain a
participant into a JSON-lines sink, run the `jcu` command against the test world."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from broker.audit import AuditLog
from broker.clock import utc_now
from broker.envelope import Labels
from broker.kafka.clients import reliable_producer
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import scan
from broker.kafka.topics import DLQ, TopicSpec, ensure_topics
from broker.pep import JsonlSink, Publisher, Subscriber, SubscriberStats
from broker.pep.context import PepContext
from tests.broker.pep.records import indicator
from tests.world import World


async def produce(
    world: World,
    topic: str,
    value: bytes,
    key: str | None = None,
    *,
    kafka: KafkaConnection | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    **producer_options: Any,
) -> Any:
    """Write one raw record, bypassing the publisher (as a hostile member could; by default
    with the platform admin's rights, so that any topic can be written); its RecordMetadata
    (on a data topic, `timestamp` is the broker's append time)."""
    options: dict[str, Any] = {"enable_idempotence": False, "acks": 1, "compression_type": None}
    options.update(producer_options)
    producer = reliable_producer(kafka or world.admin, **options)
    await producer.start()
    try:
        return await producer.send_and_wait(
            topic, value, key=key.encode() if key else None, headers=headers
        )
    finally:
        await producer.stop()


async def publish_red(world: World, n: int, network: str = "198.51.100") -> list[str]:
    """`n` RED indicators from soc-fr to enisa (addresses `network`.0, .1, ...): their ids."""
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        return [
            (
                await pub.publish(
                    "Indicator",
                    indicator(f"{network}.{i}"),
                    labels=Labels.of("RED"),
                    recipients=["enisa"],
                )
            ).message_id
            for i in range(n)
        ]


async def private_audit(world: World, ctx: PepContext, side: str, state: Path) -> AuditLog:
    """An audit log of `ctx`'s organisation on topics of this test alone: for a copy of a
    node, whose log must not fork the session's own node's log."""
    suffix = uuid.uuid4().hex[:8]
    topics = (f"test.audit.decisions.{suffix}", f"test.audit.checkpoints.{suffix}")
    await ensure_topics(world.admin, [TopicSpec(t, partitions=1) for t in topics])
    org = ctx.identity
    kid = ctx.envelope.keyring.current_signing_key_id(org, utc_now())
    return AuditLog(
        f"{org}/{side}",
        ctx.envelope.keystore.signing_key(org, kid),
        world.admin,  # topics of this test alone, which no organisation's ACLs name
        state,
        store=ctx.envelope.store,
        decisions_topic=topics[0],
        checkpoints_topic=topics[1],
    )


async def drain(
    world: World,
    org: str,
    out: Path,
    *,
    receipts: bool = False,
    ctx: PepContext | None = None,
) -> tuple[SubscriberStats, list[dict[str, Any]]]:
    """Receive everything on `org`'s topics with a fresh group (as `org`'s node, or as a copy
    `ctx` of it, audited apart); what its sink got."""
    path = out / f"{org}.jsonl"
    node = ctx if ctx is not None else world.ctx(org)
    audit = await private_audit(world, node, "receive", out / "audit") if ctx else None
    sub = Subscriber(
        org, node, JsonlSink(path), group_id=world.group(org), receipts=receipts, audit=audit
    )
    async with sub:
        stats = await sub.run(until_idle=True)
    lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    return stats, lines


async def dead_letters(world: World, message_id: str, participant: str) -> list[str]:
    """The reasons `participant` dead-lettered `message_id` for."""
    reasons = []
    async for r in scan(world.auditor, [DLQ]):
        headers = dict(r.headers or ())
        if r.key == message_id.encode() and headers.get("jcu.participant") == participant.encode():
            reasons.append(bytes(headers["jcu.reason"]).decode())
    return reasons


#: `jcu audit` verbs that read the audit topics: only auditors may (docs/deployment.md).
AUDIT_READERS = frozenset({"verify", "prove", "query", "explain"})


async def jcu(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """`jcu ARGS` as a subprocess run by the node `--as` names (else enisa's) in the world;
    `jcu audit verify|prove|query|explain` with that node's home and an auditor's Kafka
    principal (its audit keys open its own leaves; only auditors read the topics)."""
    env = world.env_for(args)
    if args[:1] == ("audit",) and args[1:2] and args[1] in AUDIT_READERS:
        argv = list(args)
        env = world.auditor_env(argv[argv.index("--as") + 1] if "--as" in argv[:-1] else "enisa")
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "broker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def jcu_auditor(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """`jcu ARGS` run by an auditor (enisa's home for the registry, the auditor's principal):
    the audit topics are read by auditors only."""
    return await _jcu_with(world.auditor_env("enisa"), args)


async def jcu_operator(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """`jcu ARGS` run by the platform's operator (`jcu stats` reads every topic's counts, every
    group's lag and the dead letters, which no organisation may)."""
    return await _jcu_with(world.operator_env("enisa"), args)


async def _jcu_with(env: dict[str, str], args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "broker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def spawn_subscriber(
    world: World,
    participant: str,
    out: Path,
    group: str,
    *extra: str,
    log: Path,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`jcu subscribe` running in the background. Its stderr goes to `log`: a pipe nobody
    reads while it runs could fill up (one warning per refused record) and stall it.
    `env` adds to its environment (e.g. JCU_FAULT, broker/faults.py)."""
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "broker.cli",
                "subscribe",
                "--as",
                participant,
                "--out",
                str(out),
                "--group",
                group,
                *extra,
            ],
            env={**world.env(participant), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
