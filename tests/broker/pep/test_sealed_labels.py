"""Labels travel encrypted (envelope format 2): the subscriber delivers, audits and re-checks
the decrypted ones, refuses a sender whose clear TLP lies, and still receives format 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broker.envelope import Labels
from broker.kafka.scan import scan
from broker.kafka.topics import DLQ
from broker.pep import Publisher
from tests.broker.pep.hostile import craft
from tests.broker.pep.kafka_io import drain, jcu_auditor, produce
from tests.broker.pep.records import incident_report, indicator
from tests.world import World

pytestmark = pytest.mark.kafka

TOPIC = "jcu.civilian.indicators"


async def _audited(world: World, message_id: str, point: str) -> list[dict[str, Any]]:
    """The audit records of `message_id` written by enforcement point `point`."""
    out = await jcu_auditor(
        world, "audit", "query", "--message", message_id, "--ep", point, "--json"
    )
    assert out.returncode == 0, out.stderr
    records: list[dict[str, Any]] = json.loads(out.stdout)
    return records


async def test_the_receiver_delivers_and_audits_the_decrypted_labels(
    world: World, tmp_path: Path
) -> None:
    labels = Labels.of(
        "AMBER",
        categories=["malicious-code"],
        handling_codes=["H2"],
        incident="INC-SEALED-77",
        member_states=["EE", "LV"],
    )
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        sent = await pub.publish("IncidentReport", incident_report(False), labels=labels)
    assert "enisa" in sent.recipients
    _, lines = await drain(world, "enisa", tmp_path)
    (got,) = [x for x in lines if x["message_id"] == sent.message_id]
    assert Labels.of(**got["labels"]) == labels
    (audited,) = await _audited(world, sent.message_id, "enisa/receive")
    assert audited["decision"] == "allow"
    assert audited["labels"]["incident"] == "INC-SEALED-77"
    assert audited["labels"]["member_states"] == ["EE", "LV"]


async def test_a_clear_tlp_unlike_the_sealed_one_is_refused_and_dead_lettered(
    world: World, tmp_path: Path
) -> None:
    """A sender shows GREEN in the clear over RED labels: enisa refuses it, audits the
    refusal without labels (it never trusted any) and dead-letters the record."""
    data, mid = craft(
        world.ctx("soc-fr").envelope,
        "soc-fr",
        "Indicator",
        indicator(),
        recipients=["enisa"],
        topic=TOPIC,
        labels=Labels.of("RED", incident="INC-LIE"),
        clear_tlp="GREEN",
    )
    await produce(world, TOPIC, data, key=mid)
    stats, lines = await drain(world, "enisa", tmp_path)
    assert mid not in {x["message_id"] for x in lines}
    assert stats.rejected.get("label-mismatch", 0) >= 1
    (audited,) = await _audited(world, mid, "enisa/receive")
    assert (audited["decision"], audited["rejection_reason"]) == ("reject", "label-mismatch")
    assert audited["labels"] is None
    reasons = [
        dict(rec.headers).get("jcu.reason")
        async for rec in scan(world.auditor, [DLQ])
        if rec.key == mid.encode()
    ]
    assert b"label-mismatch" in reasons


async def test_a_format_1_envelope_is_still_received(world: World, tmp_path: Path) -> None:
    labels = Labels.of("GREEN", categories=["malicious-code"], incident="INC-V1")
    data, mid = craft(
        world.ctx("soc-fr").envelope,
        "soc-fr",
        "Indicator",
        indicator("192.0.2.11"),
        recipients=["enisa"],
        topic=TOPIC,
        labels=labels,
        version=1,
    )
    await produce(world, TOPIC, data, key=mid)
    _, lines = await drain(world, "enisa", tmp_path)
    (got,) = [x for x in lines if x["message_id"] == mid]
    assert got["record"]["value"] == "192.0.2.11"
    assert got["labels"]["incident"] == "INC-V1"
    (audited,) = await _audited(world, mid, "enisa/receive")
    assert audited["labels"]["incident"] == "INC-V1"
