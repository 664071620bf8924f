"""Registry snapshots reach a running enforcement point through jcu.registry (real Kafka),
and what is refused there (older epochs, forgeries, other authorities) is logged and counted."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.errors import RevokedKey
from broker.kafka.clients import reliable_producer, start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.topics import TopicSpec, ensure_topics
from broker.trust.authority.signing import sign_snapshot
from broker.trust.feed import RegistryFeed
from broker.trust.state import TrustedRegistry
from broker.trust.topic import catch_up
from tests.broker._pki import T0, Pki, make_pki
from tests.waiting import until

pytestmark = pytest.mark.kafka


async def test_a_revocation_on_the_topic_takes_effect_and_an_old_snapshot_cannot_undo_it(
    kafka_admin: KafkaConnection, tmp_path: Path
) -> None:
    orgs = ["cert-eu", "enisa", "isac-energy"]
    pki = make_pki(tmp_path / "pki", participants=orgs)
    stranger = make_pki(tmp_path / "other-authority", participants=orgs)
    topic = f"test.registry.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_admin, [TopicSpec(topic, partitions=1)])
    first = pki.export()
    state = TrustedRegistry.load(pki.nodes["isac-energy"].registry_dir, pki.store)
    state.offer(first)
    keyring = state.keyring
    kid = keyring.current_signing_key_id("cert-eu", T0)

    producer = reliable_producer(kafka_admin)
    await start_client(producer, kafka_admin)

    async def put(value: bytes | None) -> None:
        await (await producer.send(topic, value=value, key=b"snapshot"))

    feed = RegistryFeed(state, kafka_admin, topic=topic)
    try:
        await put(first)
        async with feed:
            assert feed.applied == 0  # the epoch it already holds
            pki.clock.advance(timedelta(minutes=5))
            pki.revoke("cert-eu", "compromised")
            await put(pki.export())
            await until(lambda: state.epoch == 2, "the revocation")
            with pytest.raises(RevokedKey):
                keyring.signing_key("cert-eu", kid, T0 + timedelta(minutes=6))

            with capture_logs() as logged:
                await put(first)  # replayed older snapshot, as compaction may leave it
                await put(stranger.export())  # another authority's
                await put(_forged(pki))  # the epoch changed after signing
                await put(_signed_by_a_participant(pki))
                await put(None)  # a tombstone
                await put(b"\xc3\x01not a snapshot")
                await until(lambda: len(feed.rejected) >= 6, "the refusals")
            reasons = [
                "stale-registry",
                "unknown-key",
                "bad-signature",
                "unknown-key",
                "tombstone",
                "unknown-schema",
            ]
            assert [reason for _, reason in feed.rejected] == reasons
            refusals = [e for e in logged if e["event"] == "state record refused"]
            assert [e["reason"] for e in refusals] == reasons[:4] + reasons[5:]
            assert all(e["topic"] == topic and e["log_level"] == "warning" for e in refusals)
            assert feed.healthy and feed.applied == 1
        with pytest.raises(RevokedKey):  # still revoked: the old snapshot was not applied
            keyring.signing_key("cert-eu", kid, T0 + timedelta(minutes=6))
    finally:
        await producer.stop()


def _forged(pki: Pki) -> bytes:
    _, rec = pki.store.decode(pki.export(), expected="RegistrySnapshot")
    rec["epoch"] = 1000
    return pki.store.encode("RegistrySnapshot", rec)


def _signed_by_a_participant(pki: Pki) -> bytes:
    _, rec = pki.store.decode(pki.export(), expected="RegistrySnapshot")
    kid = pki.keyring().current_signing_key_id("enisa", pki.clock())
    key = pki.keystores["enisa"].signing_key("enisa", kid)
    return sign_snapshot(pki.store, {**rec, "epoch": 2000}, key)


async def test_a_node_with_an_old_registry_catches_up_from_the_topic(
    kafka_admin: KafkaConnection, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki", participants=["cert-eu", "eda"])
    topic = f"test.registry.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_admin, [TopicSpec(topic, partitions=1)])
    state = TrustedRegistry.load(pki.nodes["eda"].registry_dir, pki.store)
    state.offer(pki.export())
    producer = reliable_producer(kafka_admin)
    await start_client(producer, kafka_admin)
    exported = [pki.export() for _ in range(3)]  # epochs 2, 3, 4
    try:
        for data in exported:
            await (await producer.send(topic, value=data, key=b"snapshot"))
        result = await catch_up(kafka_admin, state, topic=topic)
        assert result.accepted == [2, 3, 4] and state.epoch == 4 and not result.refused
        restarted = TrustedRegistry.load(pki.nodes["eda"].registry_dir, pki.store)
        assert restarted.epoch == 4
        # Read again after a restart: epochs 2 and 3 come before 4 in the topic, history
        # not yet compacted away, passed over without a word.
        again = await catch_up(kafka_admin, restarted, topic=topic)
        assert again.accepted == [] and again.refused == []
        # Epoch 2 written again after 4: only a replay does that.
        await (await producer.send(topic, value=exported[0], key=b"snapshot"))
        replayed = await catch_up(kafka_admin, restarted, topic=topic)
        assert [reason for reason, _ in replayed.refused] == ["stale-registry"]
    finally:
        await producer.stop()
