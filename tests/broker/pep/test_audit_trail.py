"""Every act that changes who can read what, in the audit log after it happens; and nothing
on the audit topic that confirms a guess of what was shared."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.assist import AssistDesk
from broker.audit import AuditKeys, decode_records
from broker.audit.topic import read_topic
from broker.clock import to_millis, utc_now
from broker.envelope import Labels
from broker.kafka.topics import AUDIT_DECISIONS
from broker.pep import Publisher
from tests.broker.pep.kafka_io import drain, jcu, private_audit
from tests.broker.pep.records import indicator
from tests.world import World

pytestmark = pytest.mark.kafka


async def _log(world: World, org: str, message_id: str) -> list[dict[str, Any]]:
    """What `org`'s enforcement points recorded about `message_id` (read by `org`)."""
    out = await jcu(world, "audit", "query", "--as", org, "--message", message_id, "--json")
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


async def test_publish_send_receive_receipt_and_retraction_each_appear_in_the_log(
    world: World, tmp_path: Path
) -> None:
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        sent = await pub.publish(
            "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
        )
    (copy,) = sent.copies
    group_dir = tmp_path / "first"
    _, lines = await drain(world, "enisa", group_dir, receipts=True)
    assert sent.message_id in {x["message_id"] for x in lines}

    sender = await _log(world, "cert-eu", sent.message_id)
    decided = [r for r in sender if r["action"] == "publish"]
    assert {r["organisation"] for r in decided} == set(world.orgs) - {"cert-eu", "authority"}
    assert {r["organisation"]: r["decision"] for r in decided}["enisa"] == "allow"
    (outcome,) = [r for r in sender if r["action"] == "send"]
    assert (outcome["organisation"], outcome["decision"]) == ("enisa", "sent")
    assert outcome["details"]["topic"] == copy.topic
    assert (outcome["details"]["partition"], outcome["details"]["offset"]) == (
        str(copy.partition),
        str(copy.offset),
    )
    assert outcome["index"] > decided[0]["index"]  # a later entry of the same log

    receiver = await _log(world, "enisa", sent.message_id)
    (received,) = [r for r in receiver if r["action"] == "receive"]
    assert received["decision"] == "allow" and received["enforcement_point"] == "enisa/receive"
    where = received["details"]
    assert (where["topic"], where["offset"], where["sender"]) == (
        copy.topic,
        str(copy.offset),
        "cert-eu",
    )
    assert where["receipt"].startswith("jcu.civilian.receipts[")  # the receipt it sent

    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        retraction = await pub.retract(sent.message_id, "withdrawn: false positive")
    _, again = await drain(world, "enisa", tmp_path / "second")
    assert sent.message_id in {x["message_id"] for x in again}
    sender = await _log(world, "cert-eu", sent.message_id)
    (withdrawn,) = [r for r in sender if r["action"] == "retract"]
    assert (withdrawn["organisation"], withdrawn["decision"]) == ("enisa", "sent")
    assert withdrawn["details"]["retraction"] == retraction.message_id
    assert withdrawn["details"]["why"] == "withdrawn: false positive"
    receiver = await _log(world, "enisa", sent.message_id)
    applied = [r for r in receiver if r["action"] == "retract"]
    assert applied and {r["decision"] for r in applied} == {"applied"}
    assert applied[0]["details"]["sender"] == "cert-eu"


async def test_a_registry_change_is_logged_where_it_takes_effect_with_what_changed(
    world: World, tmp_path: Path
) -> None:
    ctx = world.node_copy("cert-eu", tmp_path / "cert-eu")
    audit = await private_audit(world, ctx, "publish", tmp_path / "audit")
    authority = world.authority_copy(tmp_path / "authority")  # the session's stays as it is
    authority.revoke("isac-energy", "compromised", at=to_millis(utc_now() - timedelta(hours=1)))
    revoked = world.export(authority=authority)
    async with Publisher("cert-eu", ctx, audit=audit):
        ctx.envelope.trusted.offer(revoked)  # what the registry feed does when it reads one
    records, bad = decode_records(
        ctx.envelope.store,
        await read_topic(world.admin, audit.decisions_topic),
        AuditKeys.open(tmp_path / "audit"),
    )
    assert bad == 0
    logged = [r for r in records if r.record.action == "registry"]
    first, change = logged[0], logged[1:]
    assert first.record.reasons[0].startswith("registry snapshot epoch 1 in force")
    (isac,) = [r for r in change if r.record.organisation == "isac-energy"]
    assert isac.record.decision == "applied"
    assert isac.record.details["epoch"] == "2" and isac.record.details["previous_epoch"] == "1"
    assert any("revoked compromised" in why for why in isac.record.reasons)
    assert {r.record.organisation for r in change} == {"isac-energy"}


async def test_a_desk_logs_a_registry_change_once_in_the_log_its_two_ends_share(
    world: World, tmp_path: Path
) -> None:
    """The assistance desk's publisher and subscriber write to one log (`<p>/assist`): the
    desk logs the registry change there, once, not once per end."""
    ctx = world.node_copy("cert-eu", tmp_path / "cert-eu")
    audit = await private_audit(world, ctx, "assist", tmp_path / "audit")
    authority = world.authority_copy(tmp_path / "authority")
    authority.revoke("isac-energy", "compromised", at=to_millis(utc_now() - timedelta(hours=1)))
    revoked = world.export(authority=authority)
    async with AssistDesk(ctx, "cert-eu", audit=audit):
        ctx.envelope.trusted.offer(revoked)
    records, _ = decode_records(
        ctx.envelope.store,
        await read_topic(world.admin, audit.decisions_topic),
        AuditKeys.open(tmp_path / "audit"),
    )
    change = [
        r.record.organisation
        for r in records
        if r.record.action == "registry" and r.record.details.get("epoch") == "2"
    ]
    assert change == ["isac-energy"]


def _template(value: str) -> dict[str, Any]:
    """An indicator whose every field but the address the attacker knows (the worst case)."""
    return {
        **indicator(value),
        "id": "00000000-0000-4000-8000-0000000000aa",
        "source_object_id": "indicator--00000000-0000-4000-8000-0000000000bb",
        "valid_from": datetime(2026, 11, 1, tzinfo=UTC),
    }


async def test_the_audit_topic_does_not_confirm_a_guess_of_the_content(
    world: World, tmp_path: Path
) -> None:
    """An IP address in a /16 is 65,536 guesses: hash each candidate as the log once did (a
    plain SHA-256 of the payload) and look for it in every leaf of the publisher: none."""
    secret_ip = "203.77.201.14"
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        sent = await pub.publish(
            "Indicator", _template(secret_ip), labels=Labels.of("RED"), recipients=["enisa"]
        )
    store = world.ctx("cert-eu").envelope.store
    candidates = {
        hashlib.sha256(store.encode("Indicator", _template(f"203.77.{a}.{b}"))).digest()
        for a in range(256)
        for b in range(256)
    }
    truth = hashlib.sha256(store.encode("Indicator", _template(secret_ip))).digest()
    assert truth in candidates and len(candidates) == 65_536  # the attack works on plain hashes
    leaves = [
        r.value for r in await read_topic(world.auditor, AUDIT_DECISIONS, key="cert-eu/publish")
    ]
    assert leaves
    for value in leaves:
        windows = {value[i : i + 32] for i in range(len(value) - 31)}
        assert not windows & candidates
        assert secret_ip.encode() not in value and sent.message_id.encode() not in value

    # The owner of the log (or an auditor given its key) can still match the content.
    content = tmp_path / "guess.json"
    content.write_text(json.dumps(_template(secret_ip), default=str))
    found = await jcu(world, "audit", "query", "--as", "cert-eu", "--content", str(content),
                      "--type", "Indicator", "--json")  # fmt: skip
    assert found.returncode == 0, found.stderr
    rows = json.loads(found.stdout)
    assert {r["message_id"] for r in rows} == {sent.message_id}
    assert all(bytes.fromhex(r["content_hash"]) != truth for r in rows)  # keyed, not plain
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(_template("203.77.201.15"), default=str))
    missed = await jcu(world, "audit", "query", "--as", "cert-eu", "--content", str(wrong),
                       "--type", "Indicator", "--json")  # fmt: skip
    assert json.loads(missed.stdout) == []
