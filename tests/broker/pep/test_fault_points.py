"""Faults at a chosen place, no timing: the subscriber stops itself (SIGSTOP) at its 7th
delivery through the fault hook (broker/faults.py), the test then kills it (SIGKILL);
the next run delivers and audits every record once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from broker.envelope import Labels
from broker.pep import Publisher
from broker.pep.subscriber import receive_side
from tests.broker.pep.conftest import World
from tests.broker.pep.kafka_io import jcu_auditor, spawn_subscriber
from tests.broker.pep.records import indicator

pytestmark = pytest.mark.kafka


def _state(pid: int) -> str:
    """The process's state letter (R, S, T for stopped...), from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0]


def _deliveries(path: Path) -> Counter[str]:
    """Message ids of the sink's delivery lines (a retraction line names what it withdraws)."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        obj = json.loads(line)
        if not obj.get("retracted"):
            counts[obj["message_id"]] += 1
    return counts


async def test_stopped_at_a_chosen_delivery_then_killed_every_record_arrives_once(
    world: World, tmp_path: Path
) -> None:
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        ours = [
            (
                await pub.publish(
                    "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
                )
            ).message_id
            for _ in range(20)
        ]
    group = world.group("enisa", "sigstop")
    out, log = tmp_path / "out", tmp_path / "subscriber.log"
    proc = spawn_subscriber(
        world,
        "enisa",
        out,
        group,
        "--batch-size",
        "5",
        log=log,
        env={"JCU_FAULT": "subscriber.after-delivery@7:SIGSTOP"},
    )
    deadline = time.monotonic() + 180
    while _state(proc.pid) != "T":  # it stops itself at its 7th delivery, not at a time
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "never reached its 7th delivery"
        await asyncio.sleep(0.1)
    sink = out / "enisa.jsonl"
    # The batches before the one in hand were flushed: at least 7 - 5 of its deliveries
    # (a batch of 5 records may hold fewer deliveries: enisa's backlog has refused ones).
    assert sum(_deliveries(sink).values()) >= 2
    proc.send_signal(signal.SIGKILL)
    assert await asyncio.to_thread(proc.wait, 30) == -signal.SIGKILL

    again = spawn_subscriber(world, "enisa", out, group, "--once", "--batch-size", "5", log=log)
    assert await asyncio.to_thread(again.wait, 180) == 0, log.read_text()
    delivered = _deliveries(sink)
    assert [m for m in ours if delivered[m] != 1] == [], "lost or delivered twice"
    assert [m for m, n in delivered.items() if n > 1] == [], "delivered twice"

    point = f"enisa/{receive_side('enisa', group)}"
    done = await jcu_auditor(world, "audit", "query", "--ep", point, "--json")
    assert done.returncode == 0, done.stderr
    audited = Counter(
        r["message_id"]
        for r in json.loads(done.stdout)
        if r["action"] == "receive" and r["decision"] != "reject"
    )
    assert {m: audited[m] for m in delivered} == dict.fromkeys(delivered, 1)
