"""Exactly once to the sink across faults: a killed subscriber, a restarted broker."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections import Counter
from pathlib import Path

import pytest

from broker import config
from broker.envelope import Labels
from broker.kafka.local import LocalKafka, free_ports
from broker.pep import JsonlSink, Publisher, Subscriber
from broker.pep.context import PepContext
from broker.pep.subscriber import receive_side
from tests.broker.pep.conftest import World
from tests.broker.pep.kafka_io import jcu_auditor, spawn_subscriber
from tests.broker.pep.records import indicator

pytestmark = pytest.mark.kafka
RED = Labels.of("RED")


#: The first "message_id" of a line (keys are sorted: the delivery's own, before its record).
_MESSAGE_ID = re.compile(r'"message_id": "([^"]+)"')


def _ids(path: Path) -> Counter[str]:
    """Message ids in the sink, without parsing each line: the file holds the session's whole
    backlog for enisa (whole STIX objects and MISP events too), and this is polled while the
    subscriber runs, to kill it mid-stream."""
    if not path.exists():
        return Counter()
    found = (
        _MESSAGE_ID.search(line) for line in path.read_text().splitlines() if line.endswith("}")
    )
    return Counter(m.group(1) for m in found if m is not None)


async def _publish(world_ctx: PepContext, n: int) -> list[str]:
    async with Publisher("soc-fr", world_ctx) as pub:
        return [
            (
                await pub.publish(
                    "Indicator", indicator(f"203.0.113.{i % 250}"), labels=RED, recipients=["enisa"]
                )
            ).message_id
            for i in range(n)
        ]


async def test_subscriber_killed_mid_stream_delivers_and_audits_each_message_once(
    world: World, tmp_path: Path
) -> None:
    """Killed (SIGKILL, at a chosen point: broker/faults.py) after its first batch reached the
    sink and the audit log but not the delivery ledger: on restart every message arrives
    once, and every delivery has one receiving decision in the log."""
    out = tmp_path / "out"
    group = world.group("enisa", "sigkill")
    first = await _publish(world.ctx("soc-fr"), 300)
    log = tmp_path / "subscriber.log"
    proc = spawn_subscriber(
        world,
        "enisa",
        out,
        group,
        "--batch-size",
        "10",
        log=log,
        env={"JCU_FAULT": "subscriber.after-audit"},
    )
    assert await asyncio.to_thread(proc.wait, 120) == -signal.SIGKILL, log.read_text()
    sink_file = out / "enisa.jsonl"
    # The group is new: its first batches may be enisa's backlog from earlier tests of the
    # session, so what reached the sink is counted over every message, not only these.
    before_kill = _ids(sink_file)
    assert sum(before_kill.values()) > 0, "killed before its first batch reached the sink"
    assert sum(before_kill[m] for m in first) < len(first), "killed after the last batch"

    second = await _publish(world.ctx("soc-fr"), 50)  # published while the subscriber is down
    again = spawn_subscriber(world, "enisa", out, group, "--once", log=log)
    await asyncio.to_thread(again.wait, 180)
    assert again.returncode == 0, log.read_text()

    counts = _ids(sink_file)
    published = first + second
    assert {m for m in published if counts[m] == 0} == set(), "messages lost"
    # (only these: the backlog's lines also carry retractions, which name their message)
    assert {m for m in published if counts[m] > 1} == set(), "messages delivered twice"

    # `jcu subscribe --group` audits on the channel's own enforcement point.
    point = f"enisa/{receive_side('enisa', group)}"
    audited = await jcu_auditor(world, "audit", "query", "--ep", point, "--json")
    assert audited.returncode == 0, audited.stderr
    ours = Counter(
        r["message_id"] for r in json.loads(audited.stdout) if r["details"].get("group") == group
    )
    assert {m for m in published if ours[m] != 1} == set(), "a delivery audited twice or never"


async def test_broker_restart_mid_stream_loses_and_duplicates_nothing(
    world: World, tmp_path: Path
) -> None:
    # A broker of this test's own, so stopping it disturbs no other test; secured like all.
    local = LocalKafka(
        tmp_path / "kafka", port=free_ports(3), cache_dir=config.load({}).kafka_cache
    )
    await local.start()
    try:
        # Each its own home, copied, with its own principal on this broker.
        nodes = await world.nodes_on(local.connection(), ["soc-fr", "enisa"], tmp_path / "nodes")
        ctx = nodes["enisa"]

        sink = JsonlSink(tmp_path / "enisa.jsonl")
        sub = Subscriber("enisa", ctx, sink, group_id="enisa.test.restart", receipts=False)
        await sub.start()
        consuming = asyncio.create_task(sub.run())
        publishing = asyncio.create_task(_publish(nodes["soc-fr"], 120))
        while not (tmp_path / "enisa.jsonl").exists() or len(_ids(tmp_path / "enisa.jsonl")) < 20:
            assert not publishing.done() or publishing.exception() is None
            await asyncio.sleep(0.05)
        assert not publishing.done(), "the broker must stop while publishing goes on"
        await asyncio.to_thread(local.stop)  # clean stop mid-stream
        await asyncio.sleep(2)
        await local.start()
        published = await asyncio.wait_for(publishing, timeout=240)
        sub.request_stop()
        await consuming
        await sub.stop()

        drain = Subscriber(
            "enisa",
            ctx,
            JsonlSink(tmp_path / "enisa.jsonl"),
            group_id="enisa.test.restart",
            receipts=False,
        )
        async with drain:
            await drain.run(until_idle=True)
        counts = _ids(tmp_path / "enisa.jsonl")
        assert len(published) == 120
        assert {m for m in published if counts[m] == 0} == set(), "messages lost"
        assert {m for m in published if counts[m] > 1} == set(), "messages delivered twice"
    finally:
        local.stop()
