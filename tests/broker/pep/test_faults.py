"""Bad records go to the dead-letter topic; good ones around them still arrive."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.envelope import Labels
from broker.kafka.scan import scan
from broker.kafka.topics import DLQ
from broker.pep import Publisher
from tests.broker.pep.conftest import World
from tests.broker.pep.kafka_io import drain, produce
from tests.broker.pep.records import indicator

pytestmark = pytest.mark.kafka


def _flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


async def test_malformed_and_tampered_records_land_in_the_dlq(world: World, tmp_path: Path) -> None:
    labels = Labels.of("RED")
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        before = await pub.publish("Indicator", indicator(), labels=labels, recipients=["enisa"])
        victim = await pub.publish("Indicator", indicator(), labels=labels, recipients=["enisa"])
        after = await pub.publish("Indicator", indicator(), labels=labels, recipients=["enisa"])
    topic = victim.copies[0].topic

    original = None
    async for rec in scan(world.admin, [topic]):
        if rec.offset == victim.copies[0].offset and rec.partition == victim.copies[0].partition:
            original = rec.value
    assert original is not None
    tampered = _flip(original, len(original) - 80)  # inside the ciphertext, header intact
    await produce(world, topic, b"\x00not an envelope at all")
    await produce(world, topic, tampered, key=victim.message_id)

    stats, lines = await drain(world, "enisa", tmp_path)
    delivered = {x["message_id"] for x in lines}
    assert {before.message_id, victim.message_id, after.message_id} <= delivered
    assert stats.rejected.get("malformed", 0) >= 1
    assert stats.rejected.get("bad-signature", 0) >= 1

    # enisa's dead letters, by reason (other tests of the session leave some too: e.g. the
    # walls' own writes to every community's topic are refused as malformed)
    reasons: dict[str, list[bytes]] = {}
    async for rec in scan(world.auditor, [DLQ]):
        headers = dict(rec.headers)
        if headers["jcu.participant"] == b"enisa":
            reasons.setdefault(bytes(headers["jcu.reason"]).decode(), []).append(rec.value)
    assert b"\x00not an envelope at all" in reasons.get("malformed", [])
    assert tampered in reasons.get("bad-signature", [])


async def test_exercise_traffic_on_an_operational_topic_is_refused(
    world: World, tmp_path: Path
) -> None:
    sealer = world.ctx("soc-fr").envelope.sealer("soc-fr")
    sealed = sealer.seal(
        "Indicator",
        indicator(),
        recipients=["enisa"],
        topic="jcu.civilian.indicators",
        labels=Labels.of("GREEN", exercise="cyber-europe-2026"),
    )
    await produce(world, "jcu.civilian.indicators", sealed.data, key=sealed.message_id)
    stats, lines = await drain(world, "enisa", tmp_path)
    assert stats.rejected.get("unauthorised", 0) >= 1
    assert sealed.message_id not in {x["message_id"] for x in lines}


async def test_only_the_original_sender_can_retract(world: World, tmp_path: Path) -> None:
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        sent = await pub.publish(
            "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
        )
    topic = sent.copies[0].topic
    forged = (
        world.ctx("cert-eu")
        .envelope.sealer("cert-eu")
        .seal(
            "Retraction",
            {
                "id": str(uuid.uuid4()),
                "message_id": sent.message_id,
                "reason": "not yours",
                "retracted": datetime.now(UTC),
            },
            recipients=["enisa"],
            topic=topic,
            labels=Labels.of("RED"),
        )
    )
    await produce(world, topic, forged.data, key=sent.message_id)
    stats, lines = await drain(world, "enisa", tmp_path)
    mine = [x for x in lines if x["message_id"] == sent.message_id]
    assert [bool(x.get("retracted")) for x in mine] == [False]
    assert stats.rejected.get("unauthorised", 0) >= 1
