"""Receipts reach the sender; retractions reach every recipient; crises widen AMBER."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from broker.envelope import Labels
from broker.pep import Publisher
from broker.pep.control import CrisisBoard
from broker.pep.receipts import read_receipts
from tests.broker.pep.conftest import World
from tests.broker.pep.kafka_io import drain, jcu
from tests.broker.pep.records import incident_report, indicator

pytestmark = pytest.mark.kafka


async def test_receipts_show_who_received_and_only_to_the_sender(
    world: World, tmp_path: Path
) -> None:
    async with Publisher("soc-fr", world.ctx) as pub:
        sent = await pub.publish(
            "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa", "cert-eu"]
        )
    for org in ("enisa", "cert-eu"):
        await drain(world, org, tmp_path, receipts=True)
    views = await read_receipts(world.ctx, "soc-fr", sent.message_id)
    assert sorted(v.receiver for v in views) == ["cert-eu", "enisa"]
    assert all(v.status == "DELIVERED" for v in views)
    # Receipts are sealed to the sender alone: another civilian member reads none of them.
    assert await read_receipts(world.ctx, "isac-energy", sent.message_id) == []


async def test_retraction_reaches_every_recipient(world: World, tmp_path: Path) -> None:
    async with Publisher("cert-eu", world.ctx) as pub:
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
    async with Publisher("cert-eu", world.ctx) as pub:
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
    )
    assert ok.returncode == 0, ok.stderr
    listed = await jcu(world, "crisis", "list", "--json")
    assert incident in {c["incident"] for c in json.loads(listed.stdout)}

    async with CrisisBoard(world.ctx.envelope, world.bootstrap) as board:
        assert incident in board.active_incidents()
    async with Publisher("cert-eu", world.ctx) as pub:
        during = await pub.publish("IncidentReport", incident_report(False), labels=labels)
    assert {"eeas-intcen", "europol-ec3", "enisa"} <= set(during.recipients)
    operational = {p.id for p in world.ctx.registry if p.role == "operational"} - {"cert-eu"}
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
    async with Publisher("cert-eu", world.ctx) as pub:
        after = await pub.publish("IncidentReport", incident_report(False), labels=labels)
    assert "eeas-intcen" not in after.recipients
