"""`jcu stats`: lag of every group (partitions it never committed on counted from their
start), lag in seconds, rates, and the same as Prometheus gauges."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from broker.envelope import Labels
from broker.kafka.clients import consumer, start_client
from broker.kafka.local import free_port
from broker.kafka.scan import partitions
from broker.pep import Publisher
from tests.broker.pep.kafka_io import jcu_operator
from tests.broker.pep.records import indicator
from tests.world import World

pytestmark = pytest.mark.kafka
TOPIC = "jcu.civilian.indicators"


async def _commit_one_partition(world: World, group: str) -> tuple[int, int]:
    """Commit `group` at the end of the first partition of TOPIC only; (the records on the
    other partitions, partitions)."""
    from aiokafka.structs import OffsetAndMetadata

    reader = consumer(world.admin, group_id=group, enable_auto_commit=False)
    await start_client(reader, world.admin)
    try:
        tps = sorted(await partitions(reader, [TOPIC]))
        ends = await reader.end_offsets(tps)
        starts = await reader.beginning_offsets(tps)
        reader.assign(tps)
        await reader.commit({tps[0]: OffsetAndMetadata(ends[tps[0]], "")})
        return sum(ends[tp] - starts[tp] for tp in tps[1:]), len(tps)
    finally:
        await reader.stop()


async def _fill(world: World) -> None:
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        for _ in range(12):  # keyed by random ids: over every partition
            await pub.publish(
                "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
            )


async def test_a_group_is_behind_by_the_partitions_it_never_committed_on(world: World) -> None:
    await _fill(world)
    group = world.group("enisa", "half-committed")
    behind, count = await _commit_one_partition(world, group)
    assert count > 1 and behind > 0
    result = await jcu_operator(world, "stats", "--json", "--window", "0.5")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    # Only what was appended since the commit could add to it (nothing: no publisher runs).
    assert data["consumer_lag"][group] == behind
    assert data["consumer_lag_seconds"][group] > 0
    assert data["rates"]["window_seconds"] == 0.5
    assert data["rates"]["groups"][group] == 0
    assert all(rate >= 0 for rate in data["rates"]["topics"].values())
    assert TOPIC in data["rates"]["topics"]


async def test_stats_exports_prometheus_gauges_until_stopped(world: World) -> None:
    await _fill(world)
    group = world.group("enisa", "exported")
    behind, _ = await _commit_one_partition(world, group)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker.cli", "stats", "--metrics-port", str(port),
         "--every", "1", "--window", "0"],
        env=world.operator_env("enisa"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    wanted = f'jcu_group_lag_records{{group="{group}"}} {float(behind)}'
    text = ""
    try:
        deadline = time.monotonic() + 120
        while wanted not in text:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, text[-2000:]
            await asyncio.sleep(0.5)
            try:
                text = await asyncio.to_thread(
                    lambda: (
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                        .read()
                        .decode()
                    )
                )
            except OSError:
                text = ""
        assert f'jcu_group_lag_seconds{{group="{group}"}}' in text
        assert 'jcu_topic_records{topic="jcu.civilian.indicators"}' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0
