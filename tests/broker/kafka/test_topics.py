"""Topic contract and creation against the real broker."""

from __future__ import annotations

import uuid

import pytest

from broker.kafka.clients import admin_client, reliable_producer
from broker.kafka.clients import consumer as new_consumer
from broker.kafka.connection import KafkaConnection
from broker.kafka.topics import TopicSpec, community_topic, contract_topics, ensure_topics
from broker.vocabulary import COMMUNITIES, STREAMS


def test_community_topic_names_follow_the_contract() -> None:
    assert community_topic("law_enforcement", "indicators") == "jcu.law_enforcement.indicators"
    assert community_topic("defence", "receipts", exercise=True) == "jcu.exercise.defence.receipts"
    with pytest.raises(ValueError, match="unknown community 'police'"):
        community_topic("police", "indicators")
    with pytest.raises(ValueError, match="unknown stream 'gossip'"):
        community_topic("civilian", "gossip")


def test_contract_lists_every_topic_once() -> None:
    names = [s.name for s in contract_topics()]
    assert len(names) == len(set(names))
    assert len(names) == 2 * len(COMMUNITIES) * len(STREAMS) + 7
    compacted = {s.name for s in contract_topics() if s.configs.get("cleanup.policy") == "compact"}
    assert compacted == {"jcu.registry", "jcu.control", "jcu.capabilities"}


@pytest.mark.kafka
async def test_ensure_topics_creates_only_missing(kafka_admin: KafkaConnection) -> None:
    name = f"test.topics.{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(name, partitions=2)
    assert await ensure_topics(kafka_admin, [spec]) == [name]
    assert await ensure_topics(kafka_admin, [spec]) == []
    admin = admin_client(kafka_admin)
    await admin.start()
    try:
        described = await admin.describe_topics([name])
        assert len(described[0]["partitions"]) == 2
    finally:
        await admin.close()


@pytest.mark.kafka
async def test_produce_and_consume_through_the_real_broker(kafka_admin: KafkaConnection) -> None:
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_admin, [TopicSpec(topic, partitions=1)])
    producer = reliable_producer(kafka_admin)
    await producer.start()
    try:
        sent = [f"record-{i}".encode() for i in range(10)]
        for value in sent:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    consumer = new_consumer(
        kafka_admin,
        topic,
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        got: list[bytes] = []
        while len(got) < len(sent):
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "no records arrived from the broker within 5 s"
            for records in batch.values():
                got.extend(r.value for r in records if r.value is not None)
        assert got == sent
    finally:
        await consumer.stop()
