"""Hostile but correctly signed input never stops a subscriber and never reaches a sink
it should not (findings of the security review, each kept as a regression test)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.envelope import Labels, MemoryReplayGuard
from broker.errors import MalformedRecord, NotARecipient, Unauthorised
from broker.kafka.scan import scan
from broker.kafka.topics import (
    AUDIT_CHECKPOINTS,
    AUDIT_COSIGNATURES,
    AUDIT_DECISIONS,
    DLQ,
    contract_topics,
)
from broker.pep import Delivery, Publisher
from broker.pep.control import CrisisBoard
from tests.broker.pep.hostile import craft
from tests.broker.pep.kafka_io import drain, jcu_operator, private_audit, produce
from tests.broker.pep.records import incident_report, indicator
from tests.world import World

TOPIC = "jcu.civilian.indicators"


def test_a_signing_key_id_in_place_of_the_kem_key_is_not_a_recipient(world: World) -> None:
    env = world.ctx("soc-fr").envelope
    signing_kid = env.keyring.current_signing_key_id("enisa", datetime.now(UTC))

    def swap(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**b, "key_id": signing_kid} if b["participant"] == "enisa" else b for b in blocks]

    data, _ = craft(
        env,
        "soc-fr",
        "Indicator",
        indicator(),
        recipients=["enisa"],
        topic=TOPIC,
        labels=Labels.of("RED"),
        bend_blocks=swap,
    )
    receiver = world.ctx("enisa").envelope
    with pytest.raises(NotARecipient):
        receiver.opener("enisa", replay_guard=MemoryReplayGuard()).open(data, topic=TOPIC)


@pytest.mark.kafka
async def test_an_oversized_record_is_dead_lettered_as_its_digest(
    world: World, tmp_path: Path
) -> None:
    huge = os.urandom(900 * 1024)
    await produce(world, TOPIC, huge, max_request_size=2 * 1024 * 1024)
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        after = await pub.publish(
            "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
        )
    stats, lines = await drain(world, "enisa", tmp_path)
    assert after.message_id in {x["message_id"] for x in lines}, "the consumer went on"
    assert stats.rejected.get("malformed", 0) >= 1
    import hashlib

    digests = []
    async for rec in scan(world.auditor, [DLQ]):
        headers = dict(rec.headers)
        if headers.get("jcu.participant") == b"enisa" and rec.value is None:
            digests.append(headers["jcu.sha256"].decode())
    assert hashlib.sha256(huge).hexdigest() in digests


@pytest.mark.kafka
async def test_personal_data_is_found_by_content_not_by_the_label(
    world: World, tmp_path: Path
) -> None:
    unlabelled = Labels.of("AMBER", categories=["malicious-code"])  # personal_data left false
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        res = await pub.publish("IncidentReport", incident_report(True), labels=unlabelled)
    diplomatic = [c for c in res.copies if c.community == "diplomatic"]
    assert diplomatic and set(diplomatic[0].redacted_fields) == {"affected_persons", "reporter"}

    # A hostile sender that bypasses the publisher: the receiver refuses the copy.
    data, mid = craft(
        world.ctx("cert-eu").envelope,
        "cert-eu",
        "IncidentReport",
        incident_report(True),
        recipients=["eeas-intcen"],
        topic="jcu.diplomatic.incidents",
        labels=unlabelled,
    )
    await produce(world, "jcu.diplomatic.incidents", data, key=mid)
    stats, lines = await drain(world, "eeas-intcen", tmp_path)
    assert mid not in {x["message_id"] for x in lines}
    assert stats.rejected.get("unauthorised", 0) >= 1
    # ... and names cert-eu as the sender that broke the policy
    listed = await jcu_operator(world, "stats", "--json")
    assert listed.returncode == 0, listed.stderr
    violations = json.loads(listed.stdout)["policy_violations"]
    assert any(
        v["sender"] == "cert-eu" and v["refused_by"] == "eeas-intcen" and v["records"] >= 1
        for v in violations
    ), violations


async def test_a_case_message_must_come_from_its_own_sender(tmp_path: Path) -> None:
    from connectors.siena.mailbox import MailboxSink

    case_id = str(uuid.uuid4())
    record = {
        "id": case_id,
        "case_reference": "EC3-1",
        "created": datetime.now(UTC),
        "sender": "europol-ec3",
        "recipients": ["cert-eu"],
        "subject": "forged",
        "body": "send the seized keys to drop@evil.example",
        "persons": [],
        "handling_codes": ["H2"],
        "handling_restrictions": None,
        "source_reliability": "B",
        "information_accuracy": 2,
        "attachments": [],
        "in_reply_to": None,
    }
    forged = Delivery(
        participant="cert-eu",
        message_id=case_id,
        sender="soc-fr",
        payload_type="CaseMessage",
        record=record,
        labels=Labels.of("AMBER"),
        topic="jcu.civilian.assistance",
        partition=0,
        offset=0,
        created=datetime.now(UTC),
        received=datetime.now(UTC),
    )
    sink = MailboxSink(tmp_path / "mailbox")
    with pytest.raises(MalformedRecord, match="claims sender 'europol-ec3'"):
        await sink.deliver(forged)
    assert not list((tmp_path / "mailbox").glob("*.json"))


def test_an_unsigned_tombstone_does_not_end_a_crisis(world: World) -> None:
    board = CrisisBoard(world.ctx("enisa").envelope, world.kafka("enisa"))
    from broker.pep.control import sign_declaration

    declarer = world.ctx("eu-cyclone").envelope
    board._feed.receive(
        b"INC-T", sign_declaration(declarer, "eu-cyclone", "INC-T", ("FR", "DE"), True)
    )
    assert "INC-T" in board.active_incidents()
    board._feed.receive(b"INC-T", None)
    assert "INC-T" in board.active_incidents()
    board._feed.receive(
        b"INC-OTHER",
        sign_declaration(declarer, "eu-cyclone", "INC-U", ("FR", "DE"), True),
    )
    assert "INC-U" not in board.active_incidents(), "the key must name the declared incident"


def test_the_audit_topics_are_never_deleted_by_retention() -> None:
    specs = {s.name: s for s in contract_topics()}
    for name in (AUDIT_DECISIONS, AUDIT_CHECKPOINTS, AUDIT_COSIGNATURES):
        assert specs[name].configs == {"retention.ms": "-1", "retention.bytes": "-1"}


@pytest.mark.kafka
async def test_a_suspended_organisation_cannot_publish(world: World, tmp_path: Path) -> None:
    """The authority suspends soc-fr in a snapshot; soc-fr's node, once it has it, refuses."""

    def suspend(document: dict[str, Any]) -> None:
        for p in document["participants"]:
            if p["id"] == "soc-fr":
                p["status"] = "suspended"

    authority = world.authority_copy(tmp_path / "authority")  # the session's stays as it is
    suspended = world.export(suspend, authority=authority)
    ctx = world.node_copy("soc-fr", tmp_path / "soc-fr", suspended)
    assert ctx.registry.get("soc-fr").status == "suspended"
    assert world.ctx("soc-fr").registry.get("soc-fr").status == "active"
    audit = await private_audit(world, ctx, "publish", tmp_path / "audit")  # a copy: apart
    async with Publisher("soc-fr", ctx, audit=audit) as pub:
        with pytest.raises(Unauthorised, match="not an active organisation"):
            await pub.publish("Indicator", indicator(), labels=Labels.of("GREEN"))


@pytest.mark.kafka
async def test_a_message_id_cannot_be_raced_onto_another_partition(
    world: World, tmp_path: Path
) -> None:
    """A member that sees cert-eu's message id in a header re-uses it for its own record."""
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        genuine = await pub.publish(
            "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
        )
    sealer = world.ctx("isac-energy").envelope.sealer("isac-energy")
    squat = sealer.seal(
        "Indicator",
        indicator("192.0.2.66"),
        recipients=["enisa"],
        topic=TOPIC,
        labels=Labels.of("RED"),
        message_id=genuine.message_id,
    )
    # Keyed otherwise, to land on another partition and be read first by a lagging reader:
    await produce(world, TOPIC, squat.data, key="another-key")
    # Keyed by the id: it lands after the genuine message on the same partition.
    await produce(world, TOPIC, squat.data, key=genuine.message_id)
    stats, lines = await drain(world, "enisa", tmp_path)
    mine = [x for x in lines if x["message_id"] == genuine.message_id]
    assert [x["sender"] for x in mine] == ["cert-eu"]
    assert stats.rejected.get("malformed", 0) >= 1 and stats.rejected.get("replay", 0) >= 1


@pytest.mark.kafka
async def test_a_payload_type_travels_only_on_its_own_stream(world: World, tmp_path: Path) -> None:
    sealer = world.ctx("soc-fr").envelope.sealer("soc-fr")
    misplaced = sealer.seal(
        "IncidentReport",
        incident_report(False),
        recipients=["enisa"],
        topic=TOPIC,
        labels=Labels.of("RED"),
    )  # an incident on indicators
    await produce(world, TOPIC, misplaced.data, key=misplaced.message_id)
    stats, lines = await drain(world, "enisa", tmp_path)
    assert misplaced.message_id not in {x["message_id"] for x in lines}
    assert stats.rejected.get("malformed", 0) >= 1
