"""Receipts reach the sender; retractions reach every recipient; crises widen AMBER."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from broker.clock import utc_now
from broker.envelope import Labels, read_header
from broker.kafka.scan import scan
from broker.kafka.topics import CONTROL, TopicSpec, community_topic, ensure_topics
from broker.pep import Publisher
from broker.pep.control import (
    CrisisBoard,
    publish_declaration,
    sign_declaration,
    verify_declaration,
)
from broker.pep.receipts import batch_receipt, read_receipts, receipts_of
from broker.pep.sink import JsonlSink
from broker.pep.subscriber import Subscriber
from tests.broker._pki import FakeClock
from tests.broker.pep.conftest import World
from tests.broker.pep.kafka_io import drain, jcu, produce, publish_red
from tests.broker.pep.records import incident_report, indicator

pytestmark = pytest.mark.kafka


async def test_receipts_show_who_received_and_only_to_the_sender(
    world: World, tmp_path: Path
) -> None:
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        sent = await pub.publish(
            "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa", "cert-eu"]
        )
    for org in ("enisa", "cert-eu"):
        await drain(world, org, tmp_path, receipts=True)
    views = await read_receipts(world.ctx("soc-fr"), "soc-fr", sent.message_id)
    assert sorted(v.receiver for v in views) == ["cert-eu", "enisa"]
    assert all(v.status == "DELIVERED" for v in views)
    # Receipts are sealed to the sender alone: another civilian member reads none of them.
    assert await read_receipts(world.ctx("isac-energy"), "isac-energy", sent.message_id) == []


async def test_one_signed_receipt_per_receiver_sender_and_batch(
    world: World, tmp_path: Path
) -> None:
    group = world.group("enisa", "batch-receipts")

    async def receive(receipts: bool) -> None:
        sink = JsonlSink(tmp_path / "enisa.jsonl")
        sub = Subscriber("enisa", world.ctx("enisa"), sink, group_id=group, receipts=receipts)
        async with sub:
            await sub.run(until_idle=True)

    await receive(False)  # past enisa's backlog: the next batch is ours alone
    ours = await publish_red(world, 4, "198.51.100")
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        amber = Labels.of("AMBER", categories=["malicious-code"], incident="INC-7")
        sent = await pub.publish("Indicator", indicator(), labels=amber, recipients=["enisa"])
    ours.append(sent.message_id)
    started = utc_now()
    await receive(True)

    topic = community_topic(world.ctx("soc-fr").registry.get("soc-fr").community, "receipts")
    records = []
    async for r in scan(world.admin, [topic]):
        header = read_header(world.ctx("soc-fr").envelope.store, r.value)
        if header.sender == "enisa" and header.created >= started - timedelta(seconds=1):
            records.append(header)
    # One record for the five, sealed to soc-fr alone, at the strictest TLP among them.
    assert [(h.recipient_ids, h.tlp, h.payload_type) for h in records] == [
        (("soc-fr",), "RED", "eu.jcu.v1.Receipt")
    ]
    got = await receipts_of(world.ctx("soc-fr"), "soc-fr")
    mine = {v.message_id: v for v in got.signed if v.message_id in ours}
    assert sorted(mine) == sorted(ours)
    assert {(v.receiver, v.status) for v in mine.values()} == {("enisa", "DELIVERED")}
    for message_id in ours:  # and `jcu receipts MSG` answers per message
        [view] = await read_receipts(world.ctx("soc-fr"), "soc-fr", message_id)
        assert (view.receiver, view.status) == ("enisa", "DELIVERED")


async def test_a_receipt_naming_a_message_never_sent_to_its_signer_is_refused(
    world: World,
) -> None:
    """cert-eu signs a receipt for a message soc-fr sent to enisa alone: refused, said, and
    cert-eu never shows as having received it."""
    [message_id] = await publish_red(world, 1, "203.0.113")
    topic = community_topic(world.ctx("soc-fr").registry.get("soc-fr").community, "receipts")
    sealed = (
        world.ctx("cert-eu")
        .envelope.sealer("cert-eu")
        .seal(
            "Receipt",
            batch_receipt("cert-eu", [(message_id, utc_now())]),
            recipients=["soc-fr"],
            topic=topic,
            labels=Labels.of("RED"),
        )
    )
    meta = await produce(world, topic, sealed.data, "cert-eu")
    got = await receipts_of(world.ctx("soc-fr"), "soc-fr", message_id)
    assert [v.receiver for v in got.views] == []
    where = f"{topic}[{meta.partition}]@{meta.offset}"
    [refused] = [x for x in got.refused if x.where == where]
    assert (refused.signer, refused.reason) == ("cert-eu", "receipt-not-sent")
    assert "never sent to cert-eu" in refused.detail
    # `jcu receipts MSG` says it on stderr, and its answer (same shape) counts it nowhere.
    shown = await jcu(world, "receipts", message_id, "--as", "soc-fr", "--json")
    assert shown.returncode == 0, shown.stderr
    assert f"warning: receipt {where} signed by cert-eu refused (receipt-not-sent)" in shown.stderr
    rows = {r["org"]: r for r in json.loads(shown.stdout)["recipients"]}
    assert (rows["enisa"]["state"], rows["cert-eu"]["state"]) == ("pending", "denied")
    assert rows["cert-eu"]["received"] is None


async def test_retraction_reaches_every_recipient(world: World, tmp_path: Path) -> None:
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        sent = await pub.publish(
            "Indicator", indicator(), labels=Labels.of("AMBER", categories=["malicious-code"])
        )
        retraction = await pub.retract(sent.message_id, "false positive")
    assert {c.topic for c in retraction.copies} == {c.topic for c in sent.copies}
    for org in sent.recipients:
        _, lines = await drain(world, org, tmp_path)
        mine = [x for x in lines if x["message_id"] == sent.message_id]
        assert [bool(x.get("retracted")) for x in mine] == [False, True], org
        assert mine[1]["reason"] == "false positive"


async def test_crisis_declaration_widens_amber_and_only_authorities_may_declare(
    world: World, tmp_path: Path
) -> None:
    incident = f"INC-{uuid.uuid4().hex[:6]}"
    labels = Labels.of("AMBER", categories=["fraud"], incident=incident, member_states=["FR", "DE"])
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        before = await pub.publish("IncidentReport", incident_report(False), labels=labels)
    assert "eeas-intcen" not in before.recipients  # no mandate for fraud, no crisis yet

    refused = await jcu(
        world,
        "crisis",
        "declare",
        "--as",
        "enisa",
        "--incident",
        incident,
        "--member-states",
        "FR,DE",
    )
    assert refused.returncode == 1
    assert "enisa may not declare or end a crisis" in refused.stderr
    too_small = await jcu(
        world,
        "crisis",
        "declare",
        "--as",
        "eu-cyclone",
        "--incident",
        incident,
        "--member-states",
        "FR",
    )
    assert too_small.returncode == 1
    assert "two or more Member States" in too_small.stderr or "2 or more" in too_small.stderr
    ok = await jcu(
        world,
        "crisis",
        "declare",
        "--as",
        "eu-cyclone",
        "--incident",
        incident,
        "--member-states",
        "FR,DE",
        "--days",
        "2",
    )
    assert ok.returncode == 0, ok.stderr
    listed = await jcu(world, "crisis", "list", "--json")
    (mine,) = [c for c in json.loads(listed.stdout) if c["incident"] == incident]
    assert mine["state"] == "active"
    since, until = (datetime.fromisoformat(mine[k]) for k in ("time", "expires"))
    assert until - since == timedelta(days=2)

    async with CrisisBoard(world.ctx("cert-eu").envelope, world.kafka("cert-eu")) as board:
        assert incident in board.active_incidents()
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        during = await pub.publish("IncidentReport", incident_report(False), labels=labels)
    assert {"eeas-intcen", "europol-ec3", "enisa"} <= set(during.recipients)
    operational = {p.id for p in world.ctx("cert-eu").registry if p.role == "operational"} - {
        "cert-eu"
    }
    assert operational <= set(during.recipients)
    # The receiving side applies the same crisis state: EEAS gets the report.
    _, got = await drain(world, "eeas-intcen", tmp_path)
    assert during.message_id in {x["message_id"] for x in got}

    ended = await jcu(
        world,
        "crisis",
        "end",
        "--as",
        "eu-cyclone",
        "--incident",
        incident,
        "--member-states",
        "FR,DE",
    )
    assert ended.returncode == 0, ended.stderr
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        after = await pub.publish("IncidentReport", incident_report(False), labels=labels)
    assert "eeas-intcen" not in after.recipients


async def test_a_replayed_old_declaration_reopens_no_crisis_after_its_expiry(world: World) -> None:
    """A writer to jcu.control without a signing key keeps an old declare and produces it
    again after the end; compaction then leaves only that declare under the incident key."""
    incident = f"INC-{uuid.uuid4().hex[:6]}"
    env = world.ctx("eu-cyclone").envelope
    declare = sign_declaration(env, "eu-cyclone", incident, ("FR", "DE"), True, timedelta(days=1))
    await publish_declaration(world.kafka("eu-cyclone"), incident, declare)
    end = sign_declaration(env, "eu-cyclone", incident, ("FR", "DE"), False)
    await publish_declaration(world.kafka("eu-cyclone"), incident, end)
    # The replay, the old bytes unchanged, by someone past the wall (the admin's rights).
    await produce(world, CONTROL, declare, key=incident)
    expires = verify_declaration(env, declare).expires

    # Before compaction the end is newer than the replayed declare: no crisis.
    async with CrisisBoard(env, world.kafka("eu-cyclone")) as board:
        assert incident not in board.active_incidents()

    # What compaction keeps of the incident: its last record, which is the replayed declare.
    latest: dict[bytes, bytes] = {}
    async for r in scan(world.kafka("eu-cyclone"), [CONTROL]):
        if r.key == incident.encode():
            latest[r.key] = r.value
    assert latest == {incident.encode(): declare}
    compacted = f"jcu.test.control.{uuid.uuid4().hex[:8]}"
    await ensure_topics(world.admin, [TopicSpec(compacted, 1, 1, {"cleanup.policy": "compact"})])
    for key, value in latest.items():
        await produce(world, compacted, value, key=key.decode())

    clock = FakeClock(utc_now())
    async with CrisisBoard(env, world.admin, topic=compacted, clock=clock) as board:
        # Until the old declaration expires, the replay does re-open the crisis: the bound.
        assert board.active_incidents() == {incident}
        clock.now = expires
        assert board.active_incidents() == frozenset()
        assert [d.incident for d in board.declarations()] == [incident]


async def test_crisis_list_shows_an_expired_declaration_only_with_all(world: World) -> None:
    incident = f"INC-{uuid.uuid4().hex[:6]}"
    data = sign_declaration(
        world.ctx("eu-cyclone").envelope,
        "eu-cyclone",
        incident,
        ("FR", "DE"),
        True,
        timedelta(milliseconds=1),
    )
    await publish_declaration(world.kafka("eu-cyclone"), incident, data)

    in_force = await jcu(world, "crisis", "list", "--json")
    assert in_force.returncode == 0, in_force.stderr
    assert incident not in {c["incident"] for c in json.loads(in_force.stdout)}
    everything = await jcu(world, "crisis", "list", "--all", "--json")
    (mine,) = [c for c in json.loads(everything.stdout) if c["incident"] == incident]
    assert mine["state"] == "expired" and mine["active"] is True
    table = await jcu(world, "crisis", "list", "--all")
    row = next(line for line in table.stdout.splitlines() if incident in line)
    assert "expired" in row
