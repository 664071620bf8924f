"""Faults of a three-broker cluster (KRaft, replication factor 3, min.insync.replicas=2):
one broker SIGKILLed mid-stream and restarted, and a rolling restart of all three, while
soc-fr publishes and enisa receives. Every message id is delivered exactly once and the
audit log verifies.

The cluster is this module's own (secured like every other), started once for its tests.
The faults are placed deterministically: a broker dies after a chosen number of messages
is published and a chosen number delivered, and the rest is published while it is down.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import config
from broker.audit import verify
from broker.audit.topic import read_topic
from broker.cli.audit import keyring_resolvers
from broker.envelope import Labels
from broker.kafka.clients import admin_client, start_client
from broker.kafka.connection import read_client_file
from broker.kafka.local import LocalKafka, free_ports
from broker.kafka.topics import AUDIT_CHECKPOINTS, AUDIT_DECISIONS
from broker.pep import JsonlSink, Publication, Publisher, Subscriber
from broker.pep.context import PepContext
from tests.broker.pep.records import indicator
from tests.world import World

# Three brokers restarting on a 2-core machine shared with other work: minutes, not seconds.
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

RED = Labels.of("RED")
CHUNK = 100


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    local = LocalKafka(
        tmp_path_factory.mktemp("kafka3"),
        port=free_ports(9),
        brokers=3,
        cache_dir=config.load({}).kafka_cache,
    )
    asyncio.run(local.start(timeout=180))
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def nodes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nodes3")


@pytest.fixture(scope="module")
async def nodes(world: World, cluster: LocalKafka, nodes_dir: Path) -> dict[str, PepContext]:
    """soc-fr's and enisa's nodes on the cluster, for all of this module's tests: their audit
    logs there go on from one test to the next, and verify whole after each."""
    return await world.nodes_on(
        cluster.connection(), ["soc-fr", "enisa"], nodes_dir / "nodes", replication=3
    )


def _ids(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(json.loads(line)["message_id"] for line in path.read_text().splitlines() if line)


async def _publish(pub: Publisher, n: int) -> list[str]:
    sent: list[str] = []
    for start in range(0, n, CHUNK):
        items = [
            Publication("Indicator", indicator(f"203.0.113.{i % 250}"), RED, ("enisa",))
            for i in range(start, min(n, start + CHUNK))
        ]
        sent += [r.message_id for r in await pub.publish_many(items)]
    return sent


async def _until_delivered(sink: Path, wanted: set[str], consuming: asyncio.Task[object]) -> None:
    """Wait until the sink holds `wanted` (the subscriber runs meanwhile); fail if it stops."""
    for _ in range(3000):
        if wanted <= set(_ids(sink)):
            return
        if consuming.done():
            consuming.result()
            raise AssertionError("the subscriber stopped")
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(wanted - set(_ids(sink)))} messages not delivered in 300 s")


async def _leader_of(cluster: LocalKafka, topic: str, partition: int) -> int:
    kafka = cluster.connection()
    admin = admin_client(kafka)
    await start_client(admin, kafka)
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return int(next(p["leader"] for p in described["partitions"] if p["partition"] == partition))


async def _audit_verifies(cluster_dir: Path, ctx: PepContext) -> None:
    auditor = read_client_file(cluster_dir / "credentials" / "jcu-auditor.toml")
    keys, valid = keyring_resolvers(ctx.settings, ctx.envelope.store)
    decisions = await read_topic(auditor, AUDIT_DECISIONS)
    checkpoints = await read_topic(auditor, AUDIT_CHECKPOINTS)
    report = verify(ctx.envelope.store, decisions, checkpoints, keys, valid)
    assert report.ok, [r.failure for r in report.reports if r.failure]
    assert {"soc-fr/publish", "enisa/receive"} <= {r.enforcement_point for r in report.reports}
    assert all(r.unsealed == 0 for r in report.reports)


def _exactly_once(sink: Path, published: list[str]) -> None:
    counts = _ids(sink)
    assert len(set(published)) == len(published)
    assert {m for m in published if counts[m] == 0} == set(), "messages lost"
    assert {m for m in published if counts[m] > 1} == set(), "messages delivered twice"


async def test_a_broker_killed_mid_stream_loses_and_doubles_nothing(
    cluster: LocalKafka, nodes: dict[str, PepContext], nodes_dir: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "enisa.jsonl"
    sub = Subscriber("enisa", nodes["enisa"], JsonlSink(sink), group_id="enisa.faults.kill")
    await sub.start()
    consuming = asyncio.create_task(sub.run())
    try:
        async with Publisher("soc-fr", nodes["soc-fr"]) as pub:
            first = await _publish(pub, 1500)
            await _until_delivered(sink, set(first[:500]), consuming)
            # The leader of a partition both sides use dies, mid-stream, with no warning.
            victim = await _leader_of(cluster, "jcu.civilian.indicators", 0)
            assert cluster.kill_node(victim) is not None
            assert cluster.status().pids.keys() == {1, 2, 3} - {victim}
            second = await _publish(pub, 1500)  # while it is down: two replicas in sync
            await _until_delivered(sink, set(first + second), consuming)
            await cluster.start_node(victim)
            third = await _publish(pub, 200)  # and after it is back
            await _until_delivered(sink, set(third), consuming)
    finally:
        sub.request_stop()
        await consuming
        await sub.stop()
    _exactly_once(sink, first + second + third)
    await _audit_verifies(nodes_dir / "nodes", nodes["enisa"])


async def test_a_rolling_restart_of_all_three_keeps_the_stream_going(
    cluster: LocalKafka, nodes: dict[str, PepContext], nodes_dir: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "enisa.jsonl"
    sub = Subscriber("enisa", nodes["enisa"], JsonlSink(sink), group_id="enisa.faults.rolling")
    await sub.start()
    consuming = asyncio.create_task(sub.run())
    published: list[str] = []
    try:
        async with Publisher("soc-fr", nodes["soc-fr"]) as pub:
            published += await _publish(pub, 500)
            for node in (1, 2, 3):
                await asyncio.to_thread(cluster.stop_node, node)  # a clean stop, as an upgrade
                during = await _publish(pub, 500)  # the stream goes on without it
                await _until_delivered(sink, set(during), consuming)
                published += during
                await cluster.start_node(node)
            published += await _publish(pub, 500)
            await _until_delivered(sink, set(published), consuming)
    finally:
        sub.request_stop()
        await consuming
        await sub.stop()
    assert len(published) == 2500
    _exactly_once(sink, published)
    await _audit_verifies(nodes_dir / "nodes", nodes["enisa"])
