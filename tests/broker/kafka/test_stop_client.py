"""A client stopped as soon as its start returns is closed whole (real Kafka): aiokafka's own
stop raises CancelledError then and leaves the consumer's connections open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.kafka.clients import consumer, start_client, stop_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.follower import TopicFollower
from broker.kafka.topics import CONTROL


def _closed_whole(client: Any) -> bool:
    """Stopped to the end: aiokafka marks a consumer closed first, then closes its parts (the
    last: its client's metadata task and connections)."""
    inner = client._client
    return bool(
        client._closed
        and inner._sync_task is None
        and not any(conn.connected() for conn in inner._conns.values())
    )


async def test_aiokafka_alone_raises_when_stopped_right_after_its_start(
    kafka_admin: KafkaConnection,
) -> None:
    """The quirk `stop_client` exists for (if aiokafka fixes it, this says so). aiokafka's own
    start: `start_client` runs it in a task of its own, which lets the offsets task start."""
    client = consumer(kafka_admin)
    await client.start()
    with pytest.raises(asyncio.CancelledError):
        await client.stop()
    assert not _closed_whole(client)
    await client._client.close()  # what is left of it


async def test_a_client_stopped_right_after_its_start_is_closed(
    kafka_admin: KafkaConnection,
) -> None:
    client = consumer(kafka_admin)
    await client.start()  # not `start_client`: its own turns of the loop would hide the quirk
    await stop_client(client)
    assert _closed_whole(client)


async def test_a_follower_cancelled_as_it_connects_leaves_no_client_open(
    kafka_admin: KafkaConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `jcu publish` whose file fails to parse cancels the connections under way; a
    follower cancelled just after its consumer started stops that consumer whole."""
    from broker.kafka import follower as follower_module

    made: list[object] = []

    async def cancelled(client: object, topics: object) -> dict[object, int]:
        made.append(client)
        raise asyncio.CancelledError

    monkeypatch.setattr(follower_module, "assign_all", cancelled)
    follower: TopicFollower[object] = TopicFollower(kafka_admin, CONTROL, lambda k, v: v, print)
    with pytest.raises(asyncio.CancelledError):
        await follower.connect()
    (client,) = made
    assert _closed_whole(client)


async def test_a_start_cancelled_in_its_bootstrap_leaves_no_connection_open(
    kafka_admin: KafkaConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka never closes the connection its bootstrap asks for metadata on when the
    start is cancelled there; `start_client` lets the start finish, then stops it whole."""
    from aiokafka.conn import AIOKafkaConnection

    asked_on: list[Any] = []
    asking = asyncio.Event()
    send = AIOKafkaConnection.send

    def noting_send(conn: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if type(request).__name__.startswith("MetadataRequest") and not asked_on:
            asked_on.append(conn)
            asking.set()
        return send(conn, request, *args, **kwargs)

    monkeypatch.setattr(AIOKafkaConnection, "send", noting_send)
    client = consumer(kafka_admin)
    starting = asyncio.ensure_future(start_client(client, kafka_admin))
    await asyncio.wait_for(asking.wait(), timeout=30)
    starting.cancel()  # while the bootstrap waits for the cluster's metadata
    with pytest.raises(asyncio.CancelledError):
        await starting
    (bootstrap,) = asked_on
    assert not bootstrap.connected()
    assert _closed_whole(client)
