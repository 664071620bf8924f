"""The Kafka walls on the secured broker: each organisation's principal may do what the
registry implies and nothing else; the principal that is allowed succeeds at the same act.

Every refusal is asserted by the error's type (aiokafka's authorization errors, or ours
built on them), never by a message.
"""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    for_code,
)
from aiokafka.structs import TopicPartition

from broker.audit.topic import read_topic
from broker.envelope import Labels
from broker.errors import KafkaForbidden, KafkaUnavailable
from broker.kafka.clients import admin_client, consumer, reliable_producer, start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import partitions
from broker.kafka.topics import (
    AUDIT_CHECKPOINTS,
    AUDIT_COSIGNATURES,
    AUDIT_DECISIONS,
    CONTROL,
    REGISTRY,
    TopicSpec,
    ensure_topics,
)
from broker.pep import Publisher
from broker.pep.control import sign_declaration
from tests.broker.pep.records import indicator
from tests.cli import run
from tests.world import World

pytestmark = pytest.mark.kafka


#: What a refused read raises: ours when the principal may not even see the topic (scan's
#: metadata check), aiokafka's when it may see it and the broker refuses the fetch.
REFUSED_READ = (KafkaForbidden, TopicAuthorizationFailedError)


async def _read_one(kafka: KafkaConnection, topic: str) -> None:
    """Fetch `topic` from its start (an empty topic too: the broker checks the fetch itself)."""
    reader = consumer(kafka)
    await start_client(reader, kafka)
    try:
        tps = await partitions(reader, [topic])
        assert tps, f"{topic} has no partitions"
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        for _ in range(2):  # each waits for a fetch response (records or an error)
            await reader.getmany(*tps, timeout_ms=1000)
    finally:
        await reader.stop()


async def _write_one(kafka: KafkaConnection, topic: str, value: bytes, key: bytes) -> None:
    producer = reliable_producer(kafka, request_timeout_ms=10000)
    await start_client(producer, kafka)
    # A dead letter as a subscriber writes one: who refused it and why, in its headers.
    headers = [("jcu.participant", b"test"), ("jcu.reason", b"walls-test")]
    try:
        await producer.send_and_wait(
            topic, value, key=key, headers=headers if topic == "jcu.dlq" else None
        )
    finally:
        await producer.stop()


async def _commit(kafka: KafkaConnection, group: str, topic: str) -> None:
    """Commit offset 0 of `topic`'s partition 0 for `group` (no join: a bare commit, as the
    attack in issue 13 did)."""
    committer = consumer(kafka, group_id=group)
    await start_client(committer, kafka)
    try:
        tp = TopicPartition(topic, 0)
        committer.assign([tp])
        await committer.commit({tp: 0})
    finally:
        await committer.stop()


async def test_an_organisation_reads_its_own_communitys_topic_and_no_other(world: World) -> None:
    await _read_one(world.kafka("enisa"), "jcu.civilian.indicators")
    await _read_one(world.kafka("eeas-intcen"), "jcu.diplomatic.indicators")
    with pytest.raises(REFUSED_READ):
        await _read_one(world.kafka("enisa"), "jcu.diplomatic.indicators")
    with pytest.raises(REFUSED_READ):
        await _read_one(world.kafka("eeas-intcen"), "jcu.civilian.receipts")


async def test_exercise_topics_are_read_only_by_organisations_enrolled_in_an_exercise(
    world: World,
) -> None:
    enrolled = world.ctx("enisa").registry.get("enisa").exercises
    assert enrolled  # enisa takes part in an exercise; commission in none
    assert not world.ctx("commission").registry.get("commission").exercises
    await _read_one(world.kafka("enisa"), "jcu.exercise.civilian.indicators")
    with pytest.raises(REFUSED_READ):
        await _read_one(world.kafka("commission"), "jcu.exercise.civilian.indicators")


async def test_an_organisation_commits_only_its_own_groups(world: World) -> None:
    topic = "jcu.civilian.indicators"
    await _commit(world.kafka("cert-eu"), world.group("cert-eu"), topic)
    # The attack of issue 13: move another organisation's subscriber past a message.
    with pytest.raises(GroupAuthorizationFailedError):
        await _commit(world.kafka("enisa"), "cert-eu.subscriber", topic)
    with pytest.raises(GroupAuthorizationFailedError):
        await _commit(world.kafka("enisa"), f"jcu.test.{uuid.uuid4().hex[:6]}", topic)


async def test_only_the_registry_authority_writes_the_registry(world: World) -> None:
    data = world.federation.snapshot.read_bytes()
    with pytest.raises(TopicAuthorizationFailedError):
        await _write_one(world.kafka("enisa"), REGISTRY, data, b"snapshot")
    await _write_one(world.kafka("authority"), REGISTRY, data, b"snapshot")  # the same epoch


async def test_only_the_crisis_authorities_write_control(world: World) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await _write_one(world.kafka("cert-eu"), CONTROL, b"not a declaration", b"INC-W")
    # eu-cyclone may write (what it writes is still verified by every reader). What it
    # writes here is a signed end of an incident never declared: harmless to the tests
    # after this one, where a malformed record would be refused, with a warning, by every
    # later command of the session that reads the topic.
    incident = f"INC-W-{uuid.uuid4().hex[:6]}"
    end = sign_declaration(world.ctx("eu-cyclone").envelope, "eu-cyclone", incident, (), False)
    await _write_one(world.kafka("eu-cyclone"), CONTROL, end, incident.encode())


async def test_the_audit_topics_are_read_by_auditors_only(world: World) -> None:
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:  # writes its audit leaf
        sent = await pub.publish("Indicator", indicator(), labels=Labels.of("GREEN"))
    for topic in (AUDIT_DECISIONS, AUDIT_COSIGNATURES):
        with pytest.raises(REFUSED_READ):
            await _read_one(world.kafka("enisa"), topic)
        with pytest.raises(KafkaForbidden):
            await read_topic(world.kafka("cert-eu"), topic)
    for topic in (AUDIT_DECISIONS, AUDIT_CHECKPOINTS):
        await _read_one(world.auditor, topic)
    leaves = await read_topic(world.auditor, AUDIT_DECISIONS, key="soc-fr/publish")
    assert any(leaf.value for leaf in leaves)  # sealed: the auditor reads them with keys
    assert sent.message_id.encode() not in b"".join(leaf.value for leaf in leaves)
    await read_topic(world.auditor, AUDIT_COSIGNATURES)


async def test_a_witness_reads_the_checkpoints_and_writes_cosignatures_only(
    world: World,
) -> None:
    """`jcu audit witness` runs as its node's principal: sizes and roots of the others' logs
    in, cosignatures out; never a leaf, never another witness's cosignature."""
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:  # a checkpoint on stop
        await pub.publish("Indicator", indicator(), labels=Labels.of("GREEN"))
    checkpoints = await read_topic(world.kafka("enisa"), AUDIT_CHECKPOINTS)
    assert any(cp.key == "soc-fr/publish" for cp in checkpoints)
    await _write_one(world.kafka("enisa"), AUDIT_COSIGNATURES, b"not a cosignature", b"x/y")
    with pytest.raises(KafkaForbidden):
        await read_topic(world.kafka("enisa"), AUDIT_COSIGNATURES)
    with pytest.raises(KafkaForbidden):
        await read_topic(world.kafka("enisa"), AUDIT_DECISIONS)


async def test_only_the_platform_admin_creates_alters_and_deletes_topics(world: World) -> None:
    name = f"jcu.test.walls.{uuid.uuid4().hex[:8]}"
    with pytest.raises(KafkaForbidden):
        await ensure_topics(world.kafka("enisa"), [TopicSpec(name, partitions=1)])
    assert await ensure_topics(world.admin, [TopicSpec(name, partitions=1)]) == [name]
    with pytest.raises(KafkaForbidden):  # alter a topic's configuration
        await ensure_topics(
            world.kafka("enisa"),
            [TopicSpec("jcu.civilian.indicators", 2, 1, {"retention.ms": "1"})],
        )
    for kafka, allowed in ((world.kafka("enisa"), False), (world.admin, True)):
        admin = admin_client(kafka)
        await start_client(admin, kafka)
        try:
            response = await admin.delete_topics([name])
        finally:
            await admin.close()
        ((topic, code, *_),) = response.topic_error_codes
        assert topic == name
        if allowed:
            assert code == 0
        else:
            assert for_code(code) is TopicAuthorizationFailedError


async def test_dead_letters_are_read_by_auditors_and_operators_not_organisations(
    world: World,
) -> None:
    with pytest.raises(REFUSED_READ):
        await _read_one(world.kafka("enisa"), "jcu.dlq")
    await _read_one(world.auditor, "jcu.dlq")
    await _read_one(world.operator, "jcu.dlq")


async def test_an_organisation_writes_every_communitys_data_topics_and_the_dead_letters(
    world: World,
) -> None:
    """What publishing and receiving need: a copy per target community, receipts to the
    sender's community, audit records and dead letters (the walls are about reading)."""
    kafka = world.kafka("eeas-intcen")
    for topic in ("jcu.civilian.indicators", "jcu.defence.receipts", "jcu.dlq"):
        await _write_one(kafka, topic, b"\x00", b"walls-test")


async def test_a_client_certificate_is_the_same_principal_with_the_same_walls(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """mTLS instead of SCRAM: `jcu kafka cert enisa` issues a certificate whose common name is
    the principal; over the mTLS listener it gets enisa's ACLs, no more."""
    if world.cluster is None or world.cluster.mtls_bootstrap is None:
        pytest.skip("the session's cluster is not ours (KAFKA_BOOTSTRAP): no mTLS listener")
    code, out, err = run(
        [
            "kafka",
            "cert",
            "enisa",
            "--out",
            str(tmp_path / "tls"),
            "--data-dir",
            str(world.cluster.data_dir),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    issued = json.loads(out)
    assert issued["principal"] == "User:enisa"
    assert stat.S_IMODE(Path(issued["key_file"]).stat().st_mode) == 0o600
    enisa = KafkaConnection(
        bootstrap=world.cluster.mtls_bootstrap,
        security_protocol="SSL",
        ca_file=Path(issued["ca_file"]),
        cert_file=Path(issued["cert_file"]),
        key_file=Path(issued["key_file"]),
    )
    await _read_one(enisa, "jcu.civilian.indicators")
    with pytest.raises(REFUSED_READ):
        await _read_one(enisa, "jcu.defence.indicators")
    with pytest.raises(REFUSED_READ):
        await _read_one(enisa, AUDIT_DECISIONS)
    # Without a certificate the mTLS listener lets nobody in.
    anonymous = KafkaConnection(
        bootstrap=world.cluster.mtls_bootstrap, security_protocol="SSL", ca_file=enisa.ca_file
    )
    with pytest.raises(KafkaUnavailable):
        await _read_one(anonymous, "jcu.civilian.indicators")
