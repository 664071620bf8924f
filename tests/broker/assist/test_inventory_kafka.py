"""The capability inventory on the real broker: who sees which entry (rule 13) is decided by
the policy and enforced by encryption; forged and unentitled entries are refused."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace

import pytest

from broker.assist import CapabilityEntry, CapabilityPublisher, read_inventory
from broker.audit.query import query
from broker.clock import utc_now
from broker.envelope import EnvelopeReader, Labels
from broker.errors import NotEntitled
from broker.kafka.scan import scan
from broker.kafka.topics import CAPABILITIES
from broker.vocabulary import CAPABILITY_ENTRY
from tests.broker.assist.kafka_io import audit_records
from tests.broker.pep.kafka_io import produce
from tests.world import World

pytestmark = pytest.mark.kafka

CERT_EU_BASIS = "Regulation (EU, Euratom) 2023/2841, Art. 13"


def entry(owner: str = "cert-eu", basis: str = CERT_EU_BASIS, **changes: object) -> CapabilityEntry:
    base = CapabilityEntry(
        id=f"ir-{uuid.uuid4().hex[:8]}",
        owner=owner,
        kind="INCIDENT_RESPONSE",
        title="On-site incident response team",
        notice_hours=12,
        legal_basis=basis,
        updated=utc_now(),
        skills=("ransomware", "windows"),
        languages=("en", "fr"),
        capacity=4,
        deployment="ON_SITE",
        categories=("malicious-code",),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def _recipients_on_topic(world: World, key: str) -> set[str]:
    """Whom the newest record of `key` is sealed for, read from the topic without a key."""
    reader = EnvelopeReader(world.ctx("enisa").envelope.store)
    found: set[str] = set()
    async for r in scan(world.admin, [CAPABILITIES]):
        if r.key == key.encode():
            found = set(reader.decode(r.value).header.recipient_ids)
    return found


async def test_each_role_sees_what_rule_13_allows_and_nothing_else_is_even_sealed_for_it(
    world: World,
) -> None:
    secret, shareable = entry(), entry(kind="THREAT_INTELLIGENCE", deployment="REMOTE")
    async with CapabilityPublisher("cert-eu", world.ctx("cert-eu")) as pub:
        amber, green = await pub.publish([(secret, "AMBER"), (shareable, "GREEN")])

    operational = {p.id for p in world.ctx("cert-eu").registry if p.role == "operational"}
    assert set(amber.recipients) == operational - {"cert-eu"}
    civilian_members = {
        p.id
        for p in world.ctx("cert-eu").registry
        if p.role == "member" and p.community == "civilian"
    }
    assert civilian_members <= set(green.recipients)
    assert {"nis-cg", "eda", "pesco", "hwp"}.isdisjoint(green.recipients)
    # Confidentiality is cryptographic: a member is not a recipient of the AMBER envelope.
    assert "soc-fr" not in await _recipients_on_topic(world, secret.key)
    assert "soc-fr" in await _recipients_on_topic(world, shareable.key)
    # The log names the entry by a keyed hash (a disclosed leaf confirms no guess of it).
    payload = world.ctx("cert-eu").envelope.store.encode(CAPABILITY_ENTRY, secret.to_avro())
    (logged,) = {
        r.record.content_hash
        for r in query(await audit_records(world), message_id=amber.message_id)
    }
    key = world.audit_keys("cert-eu").require("cert-eu/inventory")
    assert logged == key.content_hash(payload) != hashlib.sha256(payload).digest()

    seen = {}
    for org in ("europol-ec3", "eeas-intcen", "soc-fr", "isac-energy", "eda"):
        view = await read_inventory(world.ctx(org), org)
        seen[org] = {k for k in view.entries if k in (secret.key, shareable.key)}
        assert not view.refused or all(r.key not in seen[org] for r in view.refused)
    # Operational participants in every community see both, whatever their mandate.
    assert seen["europol-ec3"] == seen["eeas-intcen"] == {secret.key, shareable.key}
    # Members only the shareable one; supporting participants nothing.
    assert seen["soc-fr"] == seen["isac-energy"] == {shareable.key}
    assert seen["eda"] == set()
    listed = (await read_inventory(world.ctx("enisa"), "enisa")).entries[secret.key]
    assert listed.entry.skills == ("ransomware", "windows") and not listed.shareable

    async with CapabilityPublisher("cert-eu", world.ctx("cert-eu")) as pub:
        assert secret.id in pub.own()
        gone = await pub.withdraw(secret.id)
        assert secret.id not in pub.own()
    assert gone.entry.withdrawn and set(gone.recipients) == set(amber.recipients)
    assert secret.key not in (await read_inventory(world.ctx("europol-ec3"), "europol-ec3")).entries


async def test_only_participants_keep_entries_under_their_own_mandates(world: World) -> None:
    # A member is no JCU participant: its node refuses to publish, before anything is sent.
    async with CapabilityPublisher("isac-energy", world.ctx("isac-energy")) as pub:
        with pytest.raises(NotEntitled, match="not a JCU participant"):
            await pub.publish([(entry("isac-energy", "EE-ISAC membership agreement"), "GREEN")])
    # A legal basis that is not one of the owner's mandates.
    async with CapabilityPublisher("cert-eu", world.ctx("cert-eu")) as pub:
        with pytest.raises(NotEntitled, match="not a legal basis"):
            await pub.publish([(entry(basis="Some other regulation"), "AMBER")])


async def test_forged_entries_are_refused_dead_lettered_and_audited_once(world: World) -> None:
    """A member's entry sealed past its node, and an entry keyed as another owner's."""
    ctx = world.ctx("isac-energy")
    member = entry("isac-energy", "EE-ISAC membership agreement", id=f"x-{uuid.uuid4().hex[:6]}")
    sealed = ctx.envelope.sealer("isac-energy").seal(
        "CapabilityEntry",
        member.to_avro(),
        recipients=["enisa"],
        topic=CAPABILITIES,
        labels=Labels.of("GREEN", categories=["malicious-code"]),
    )
    await produce(world, CAPABILITIES, sealed.data, key=member.key)
    stolen = entry(id=f"y-{uuid.uuid4().hex[:6]}")
    sealed2 = (
        world.ctx("cert-eu")
        .envelope.sealer("cert-eu")
        .seal(
            "CapabilityEntry",
            stolen.to_avro(),
            recipients=["enisa"],
            topic=CAPABILITIES,
            labels=Labels.of("AMBER", categories=["malicious-code"]),
        )
    )
    await produce(world, CAPABILITIES, sealed2.data, key=f"enisa/{stolen.id}")

    view = await read_inventory(world.ctx("enisa"), "enisa")
    reasons = {r.key: r.reason for r in view.refused}
    assert reasons[member.key] == "not-entitled"
    assert reasons[f"enisa/{stolen.id}"] == "malformed"
    assert member.key not in view.entries and stolen.key not in view.entries
    again = await read_inventory(world.ctx("enisa"), "enisa")  # read again: audited once
    assert {r.key for r in again.refused} >= {member.key}
    records = await audit_records(world)
    audited = query(records, message_id=f"capability:{member.key}", decision="reject")
    assert [(r.enforcement_point, r.record.rejection_reason) for r in audited] == [
        ("enisa/inventory", "not-entitled")
    ]


async def test_a_reader_checks_the_policy_and_the_legal_basis_itself(world: World) -> None:
    """Two entries forged past CERT-EU's own node: an AMBER one sealed for a member (the
    policy keeps non-shareable entries from members) and one under a legal basis that is not
    CERT-EU's. The readers refuse both, whatever the sender's node should have done."""
    sealer = world.ctx("cert-eu").envelope.sealer("cert-eu")
    amber = entry(id=f"a-{uuid.uuid4().hex[:6]}")
    sealed = sealer.seal(
        "CapabilityEntry",
        amber.to_avro(),
        recipients=["soc-fr", "enisa"],
        topic=CAPABILITIES,
        labels=Labels.of("AMBER", categories=["malicious-code"]),
    )
    await produce(world, CAPABILITIES, sealed.data, key=amber.key)
    foreign = entry(id=f"b-{uuid.uuid4().hex[:6]}", basis="Regulation (EU) 2019/881, Art. 7")
    sealed2 = sealer.seal(
        "CapabilityEntry",
        foreign.to_avro(),
        recipients=["enisa"],
        topic=CAPABILITIES,
        labels=Labels.of("AMBER", categories=["malicious-code"]),
    )
    await produce(world, CAPABILITIES, sealed2.data, key=foreign.key)

    member = await read_inventory(world.ctx("soc-fr"), "soc-fr")
    assert {r.key: r.reason for r in member.refused}[amber.key] == "unauthorised"
    assert amber.key not in member.entries
    operational = await read_inventory(world.ctx("enisa"), "enisa")
    assert amber.key in operational.entries  # enisa may see it: only the member's copy is wrong
    assert {r.key: r.reason for r in operational.refused}[foreign.key] == "not-entitled"
    assert foreign.key not in operational.entries
