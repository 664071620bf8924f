"""What operators rely on: clean shutdown on SIGTERM, metrics, `jcu stats`."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from broker.envelope import Labels
from broker.kafka.local import free_port
from broker.kafka.topics import DLQ
from broker.metrics import Metrics
from broker.pep import JsonlSink, Publisher, Subscriber
from broker.pep.subscriber import receive_side
from tests.broker.pep.kafka_io import jcu, jcu_auditor, jcu_operator, produce, spawn_subscriber
from tests.broker.pep.records import indicator
from tests.world import World

pytestmark = pytest.mark.kafka


async def _publish(world: World, n: int) -> list[str]:
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        return [
            (
                await pub.publish(
                    "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
                )
            ).message_id
            for _ in range(n)
        ]


async def test_sigterm_finishes_commits_checkpoints_and_exits_zero(
    world: World, tmp_path: Path
) -> None:
    sent = await _publish(world, 30)
    group = world.group("enisa", "sigterm")
    log = tmp_path / "subscriber.log"
    proc = spawn_subscriber(world, "enisa", tmp_path, group, "--batch-size", "5", log=log)
    out = tmp_path / "enisa.jsonl"
    deadline = time.monotonic() + 90
    while not (out.exists() and any(m in out.read_text() for m in sent)):
        assert proc.poll() is None and time.monotonic() < deadline
        await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(proc.wait, 60)
    err = log.read_text()
    assert proc.returncode == 0, err
    assert "enisa: delivered" in err

    # What was delivered was committed: the same group, run again, delivers only the rest.
    again = await jcu(
        world,
        "subscribe",
        "--as",
        "enisa",
        "--out",
        str(tmp_path),
        "--group",
        group,
        "--once",
        "--json",
    )
    assert again.returncode == 0, again.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    got = [x["message_id"] for x in lines if x["message_id"] in set(sent)]
    assert sorted(got) == sorted(sent)
    assert json.loads(again.stdout)["duplicates"] == 0

    # And the receiving enforcement point's audit log ended on a checkpoint.
    verified = await jcu_auditor(world, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    points = {p["enforcement_point"]: p for p in json.loads(verified.stdout)["enforcement_points"]}
    point = f"enisa/{receive_side('enisa', group)}"  # the channel's own log
    assert points[point]["unsealed"] == 0
    assert points[point]["result"] == "ok"


async def test_metrics_endpoint_counts_deliveries(world: World, tmp_path: Path) -> None:
    sent = await _publish(world, 3)
    metrics = Metrics()
    port = free_port()
    metrics.serve(port)
    sub = Subscriber(
        "enisa",
        world.ctx("enisa"),
        JsonlSink(tmp_path / "e.jsonl"),
        group_id=world.group("enisa", "metrics"),
        metrics=metrics,
        receipts=False,
    )
    async with sub:
        stats = await sub.run(until_idle=True)
    assert stats.delivered >= len(sent)
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    )
    text = body.decode()
    delivered = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("jcu_delivered_total{")
    )
    assert delivered == stats.delivered
    assert "jcu_deliver_seconds_count" in text


async def test_a_publisher_counts_into_the_metrics_it_is_given(world: World) -> None:
    """A publisher counts only into metrics passed in (a service serves them); `jcu publish`
    passes none, so prometheus_client stays off its path (tests/broker/cli/test_startup.py)."""
    from prometheus_client import generate_latest

    metrics = Metrics()
    async with Publisher("soc-fr", world.ctx("soc-fr"), metrics=metrics) as pub:
        results = [
            await pub.publish(
                "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
            )
            for _ in range(2)
        ]
    text = generate_latest(metrics.registry).decode()

    def total(prefix: str) -> float:
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(prefix))

    assert total("jcu_published_total{") == sum(len(r.copies) for r in results) > 0
    denials = sum(d.decision == "deny" for r in results for d in r.decisions)
    assert total("jcu_denied_total{") == denials > 0
    assert total("jcu_publish_seconds_count") == 2


async def test_stats_reports_topics_lag_and_dead_letters(world: World) -> None:
    await _publish(world, 2)
    result = await jcu_operator(world, "stats", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["topics"]["jcu.civilian.indicators"] >= 2
    assert {"topics", "consumer_lag", "consumer_lag_seconds", "dead_letters"} <= set(data)
    assert {"policy_violations", "rates"} <= set(data)
    assert all(isinstance(v, int) and v >= 0 for v in data["consumer_lag"].values())
    assert any(g.startswith("enisa.") for g in data["consumer_lag"])  # <org>.<channel> groups
    # An organisation's principal may not read the dead letters: a refusal, not a count
    # (it may write one: every enforcement point dead-letters what it refuses).
    await produce(
        world,
        DLQ,
        b"not a record",
        key="stats-wall",
        kafka=world.kafka("enisa"),
        headers=[("jcu.participant", b"enisa"), ("jcu.reason", b"walls-test")],
    )
    refused = await jcu(world, "stats", "--json")
    assert refused.returncode == 1 and "may not read jcu.dlq" in refused.stderr


def test_the_ledger_forgets_long_expired_deliveries_now_and_then(
    world: World, tmp_path: Path
) -> None:
    """The dedup ledger does not grow for ever: deliveries expired for longer than the grace
    are pruned, at most once per LEDGER_PRUNE_EVERY."""
    from datetime import UTC, datetime

    from broker.pep.ledger import Position
    from broker.pep.subscriber import LEDGER_GRACE, LEDGER_PRUNE_EVERY

    sub = Subscriber(
        "enisa",
        world.ctx("enisa"),
        JsonlSink(tmp_path / "e.jsonl"),
        group_id=world.group("enisa", "prune"),
        receipts=False,
    )
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    ledger = sub._ledger
    where = Position("jcu.civilian.indicators", 0, 1)
    ledger.stage("old", "soc-fr", now - LEDGER_GRACE - LEDGER_PRUNE_EVERY, where)
    ledger.stage("recent", "soc-fr", now - LEDGER_GRACE + LEDGER_PRUNE_EVERY, where)
    ledger.commit()
    assert sub._prune_ledger(now) == 1
    assert ledger.sender_of("old") is None and ledger.sender_of("recent") == "soc-fr"
    ledger.stage("old-2", "soc-fr", now - LEDGER_GRACE * 2, where)
    ledger.commit()
    assert sub._prune_ledger(now + LEDGER_PRUNE_EVERY / 2) == 0  # not yet due
    assert sub._prune_ledger(now + LEDGER_PRUNE_EVERY) == 1
    ledger.close()
