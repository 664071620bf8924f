"""Key revocations reach a running enforcement point through jcu.registry (real Kafka)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from broker.errors import RevokedKey
from broker.kafka.clients import reliable_producer, start_client
from broker.kafka.topics import TopicSpec, ensure_topics
from broker.trust.feed import KeyringFeed
from broker.trust.keyring import load_authority_public
from tests.broker._pki import T0, make_pki

pytestmark = pytest.mark.kafka


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_revocation_on_the_topic_takes_effect_and_an_old_record_cannot_undo_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki")
    stranger = make_pki(tmp_path / "other-authority")
    registry = pki.admin.registry_dir
    keyring = pki.keyring()
    topic = f"test.registry.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions=1)])
    original = (registry / "cert-eu.avro").read_bytes()
    kid = keyring.current_signing_key_id("cert-eu", T0)

    producer = reliable_producer(kafka_bootstrap)
    await start_client(producer, kafka_bootstrap)

    async def put(value: bytes | None, key: str = "cert-eu") -> None:
        await (await producer.send(topic, value=value, key=key.encode()))

    feed = KeyringFeed(
        keyring, pki.store, load_authority_public(registry), kafka_bootstrap, topic=topic
    )
    try:
        await put(original)
        async with feed:
            assert feed.applied == 0  # the same serial it already holds
            serial = keyring.entry("cert-eu").serial
            pki.admin.revoke("cert-eu", reason="key compromised")
            await put((registry / "cert-eu.avro").read_bytes())
            await _until(lambda: keyring.entry("cert-eu").serial > serial, "the revocation")
            with pytest.raises(RevokedKey):
                keyring.signing_key("cert-eu", kid, T0 + timedelta(minutes=1))

            await put(original)  # replayed older record
            await put((stranger.admin.registry_dir / "cert-eu.avro").read_bytes())
            await put(None)  # a tombstone
            await put((registry / "enisa.avro").read_bytes(), key="cert-eu")  # mis-keyed
            await _until(lambda: len(feed.rejected) >= 3, "the refusals")
            assert [reason for _, reason in feed.rejected] == [
                "unknown-key",
                "tombstone",
                "malformed",
            ]
            assert feed.healthy
        with pytest.raises(RevokedKey):  # still revoked: the old record was not applied
            keyring.signing_key("cert-eu", kid, T0 + timedelta(minutes=1))
    finally:
        await producer.stop()
