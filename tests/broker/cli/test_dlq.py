"""`jcu dlq list | show | replay`: dead letters read behind the walls, replayed through
every check again, audited in the replaying node's log."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.envelope import Labels
from broker.kafka.scan import scan
from broker.kafka.topics import DLQ
from broker.pep import Publisher
from tests.broker.pep.conftest import World
from tests.broker.pep.kafka_io import drain, jcu, jcu_auditor, jcu_operator, produce
from tests.broker.pep.records import indicator

pytestmark = pytest.mark.kafka
#: Not enisa: enisa's fresh groups in later tests would dead-letter this test's tampered
#: record again, and some of them look at enisa's dead letters by reason.
RECEIVER = "cert-eu"


async def _record_of(world: World, topic: str, partition: int, offset: int) -> bytes:
    async for rec in scan(world.admin, [topic]):
        if rec.partition == partition and rec.offset == offset:
            return bytes(rec.value)
    raise AssertionError(f"no record at {topic}[{partition}]@{offset}")


def _flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


async def _replay_as(world: World, org: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`jcu dlq replay ARGS` on `org`'s node, reading the dead letters as the auditor."""
    reader = world.credentials / f"{world.roles.auditors[0]}.toml"
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "broker.cli", "dlq", "replay", *args, "--reader", str(reader)],
        env=world.env(org),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _letter(letters: list[dict[str, Any]], message_id: str) -> dict[str, Any]:
    (found,) = [
        x for x in letters if x["message_id"] == message_id and x["participant"] == RECEIVER
    ]
    return found


async def test_dead_letters_are_listed_shown_and_replayed_through_every_check(
    world: World, tmp_path: Path
) -> None:
    red = Labels.of("RED")
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        victim = await pub.publish("Indicator", indicator(), labels=red, recipients=[RECEIVER])
        good = await pub.publish("Indicator", indicator(), labels=red, recipients=[RECEIVER])
    v, g = victim.copies[0], good.copies[0]
    # A tampered copy of `victim` (refused on receipt, dead-lettered by the subscriber) ...
    tampered = _flip(await _record_of(world, v.topic, v.partition, v.offset), -80)
    await produce(world, v.topic, tampered, key=victim.message_id)
    await drain(world, RECEIVER, tmp_path / "drained")
    # ... and a dead letter of a good record, as a subscriber whose registry lagged wrote it.
    await produce(
        world,
        DLQ,
        await _record_of(world, g.topic, g.partition, g.offset),
        key=good.message_id,
        headers=[
            ("jcu.reason", b"stale-registry"),
            ("jcu.error", b"the registry snapshot was older than the sender's"),
            ("jcu.participant", RECEIVER.encode()),
            ("jcu.source", f"{g.topic}:{g.partition}:{g.offset}".encode()),
            ("jcu.key", good.message_id.encode()),
        ],
    )

    # An organisation may not read dead letters: one line.
    refused = await jcu(world, "dlq", "list")  # on enisa's node, as enisa
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("jcu: error: "), refused.stderr
    assert "jcu.dlq" in refused.stderr and "Traceback" not in refused.stderr

    listed = await jcu_operator(world, "dlq", "list", "--participant", RECEIVER, "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)
    bad, stale = _letter(letters, victim.message_id), _letter(letters, good.message_id)
    assert bad["reason"] == "bad-signature" and stale["reason"] == "stale-registry"
    assert bad["source"]["topic"] == v.topic and bad["sender"] == "soc-fr"
    assert not bad["sender_verified"] and bad["kept"] and bad["time"]

    shown = await jcu_auditor(world, "dlq", "show", bad["id"])
    assert shown.returncode == 0, shown.stderr
    assert "reason: bad-signature" in shown.stdout and "header jcu.source:" in shown.stdout
    assert "203.0.113" not in shown.stdout  # headers and digest, never content

    # Another organisation's node cannot replay the receiver's letters.
    other = await _replay_as(world, "enisa", bad["id"])
    assert other.returncode == 1 and "another organisation's node" in other.stderr

    out = tmp_path / "replayed"
    done = await _replay_as(world, RECEIVER, bad["id"], stale["id"], "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["replayed"] == 2 and outcome["delivered"] == 1
    assert [(r["message_id"], r["reason"]) for r in outcome["refused"]] == [
        (victim.message_id, "bad-signature")
    ]
    lines = [json.loads(x) for x in (out / f"{RECEIVER}.jsonl").read_text().splitlines()]
    assert [x["message_id"] for x in lines] == [good.message_id]

    audited = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "broker.cli", "audit", "query", "--ep", f"{RECEIVER}/replay",
         "--json"],
        env=world.auditor_env(RECEIVER),  # the receiver's home: its log's keys
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert audited.returncode == 0, audited.stderr
    decided = {
        (r["message_id"], r["action"], r["decision"])
        for r in json.loads(audited.stdout)
        if r["message_id"] in (victim.message_id, good.message_id)
    }
    assert decided == {
        (good.message_id, "replay", "allow"),
        (good.message_id, "receive", "allow"),
        (victim.message_id, "replay", "allow"),
        (victim.message_id, "receive", "reject"),
    }

    # Replayed again: the good one is not delivered twice.
    again = await _replay_as(world, RECEIVER, stale["id"], "--out", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["delivered"] == 0
    assert len((out / f"{RECEIVER}.jsonl").read_text().splitlines()) == 1
