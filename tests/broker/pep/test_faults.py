"""Bad records go to the dead-letter topic; good ones around them still arrive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from broker.envelope import Labels
from broker.kafka.scan import scan
from broker.kafka.topics import DLQ
from broker.pep import JsonlSink, Publisher, Subscriber
from tests.broker.pep.conftest import World
from tests.broker.pep.records import indicator

pytestmark = pytest.mark.kafka


def _flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


async def test_malformed_and_tampered_records_land_in_the_dlq(world: World, tmp_path: Path) -> None:
    labels = Labels.of("RED")
    async with Publisher("soc-fr", world.ctx) as pub:
        before = await pub.publish("Indicator", indicator(), labels=labels, recipients=["enisa"])
        victim = await pub.publish("Indicator", indicator(), labels=labels, recipients=["enisa"])
        after = await pub.publish("Indicator", indicator(), labels=labels, recipients=["enisa"])
    topic = victim.copies[0].topic

    original = None
    async for rec in scan(world.bootstrap, [topic]):
        if rec.offset == victim.copies[0].offset and rec.partition == victim.copies[0].partition:
            original = rec.value
    assert original is not None
    tampered = _flip(original, len(original) - 80)  # inside the ciphertext, header intact
    producer = AIOKafkaProducer(bootstrap_servers=world.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"\x00not an envelope at all")
        await producer.send_and_wait(topic, tampered, key=victim.message_id.encode())
    finally:
        await producer.stop()

    sink = JsonlSink(tmp_path / "enisa.jsonl")
    sub = Subscriber("enisa", world.ctx, sink, group_id=world.group("dlq"), receipts=False)
    async with sub:
        stats = await sub.run(until_idle=True)
    delivered = {
        json.loads(line)["message_id"]
        for line in (tmp_path / "enisa.jsonl").read_text().splitlines()
    }
    assert {before.message_id, victim.message_id, after.message_id} <= delivered
    assert stats.rejected.get("malformed", 0) >= 1
    assert stats.rejected.get("bad-signature", 0) >= 1

    reasons = {}
    async for rec in scan(world.bootstrap, [DLQ]):
        headers = dict(rec.headers)
        if headers["jcu.participant"] == b"enisa":
            reasons[bytes(headers["jcu.reason"]).decode()] = rec.value
    assert reasons.get("malformed") == b"\x00not an envelope at all"
    assert reasons.get("bad-signature") == tampered
