"""What an embedding program passes in is what the enforcement points use (docs/api.md):
its Kafka client factory, its sent index and delivery ledger (left open for it), its
receive checks. On the real broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker import AllOf, Delivery, Labels, Publisher, Received, Retracted, Subscriber
from broker.errors import Unauthorised
from broker.kafka.clients import HouseClients
from broker.kafka.connection import KafkaConnection
from broker.pep.checks import receipt_checks
from broker.pep.ledger import DeliveryLedger
from broker.pep.sent import SentLog
from tests.broker.pep.conftest import World
from tests.broker.pep.records import indicator

GREEN = Labels.of("GREEN", categories=["malicious-code"])


class CountingClients:
    """The house clients, each one made noted with the options asked for."""

    def __init__(self, kafka: KafkaConnection) -> None:
        self.house = HouseClients(kafka)
        self.made: list[tuple[str, dict[str, Any]]] = []

    def producer(self, **options: Any) -> Any:
        self.made.append(("producer", options))
        return self.house.producer(**options)

    def consumer(self, *topics: str, **options: Any) -> Any:
        self.made.append(("consumer", options))
        return self.house.consumer(*topics, **options)


class MemorySink:
    def __init__(self) -> None:
        self.received: dict[str, Delivery] = {}

    async def deliver(self, delivery: Delivery) -> None:
        self.received[delivery.message_id] = delivery

    async def retract(self, retraction: Retracted) -> None:
        self.received.pop(retraction.message_id, None)

    async def flush(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_injected_clients_and_stores_are_the_ones_used_and_left_open(
    world: World, tmp_path: Path
) -> None:
    sender = world.ctx("cert-eu")
    clients = CountingClients(sender.settings.kafka)
    sent = SentLog(tmp_path / "sent.sqlite", point="cert-eu/publish")
    async with Publisher("cert-eu", sender, clients=clients, sent=sent) as publisher:
        result = await publisher.publish("Indicator", indicator(), labels=GREEN)
    assert [kind for kind, _ in clients.made] == ["producer"]
    assert "enisa" in result.recipients
    # recorded in the index given, which the publisher's stop left open
    assert sent.get(result.message_id) is not None
    sent.close()

    receiver = world.ctx("enisa")
    group = world.group("enisa")
    clients = CountingClients(receiver.settings.kafka)
    ledger = DeliveryLedger(tmp_path / "ledger.sqlite")
    sink = MemorySink()
    async with Subscriber(
        "enisa", receiver, sink, group_id=group, receipts=False, clients=clients, ledger=ledger
    ) as subscriber:
        await subscriber.run(until_idle=True)
    assert result.message_id in sink.received
    kinds = {kind: options for kind, options in clients.made}
    assert set(kinds) == {"producer", "consumer"}
    assert kinds["consumer"]["group_id"] == group
    assert kinds["consumer"]["isolation_level"] == "read_committed"
    # the delivery is in the ledger given, still open after the subscriber stopped
    assert ledger.position(result.message_id) is not None
    ledger.close()


async def test_a_check_of_the_embedders_own_refuses_with_its_reason(world: World) -> None:
    async with Publisher("cert-eu", world.ctx("cert-eu")) as publisher:
        result = await publisher.publish("Indicator", indicator(), labels=GREEN)

    class NotFromCertEu:
        reason = "unauthorised"

        def verify(self, received: Received) -> None:
            if received.sender == "cert-eu":
                raise Unauthorised("this platform takes nothing from cert-eu")

    receiver = world.ctx("enisa")
    default = receipt_checks(
        "enisa", registry=lambda: receiver.registry, store=receiver.envelope.store, workflows={}
    )
    sink = MemorySink()
    async with Subscriber(
        "enisa",
        receiver,
        sink,
        group_id=world.group("enisa"),
        receipts=False,
        receipt=AllOf([*default.checks, NotFromCertEu()]),
    ) as subscriber:
        stats = await subscriber.run(until_idle=True)
    assert result.message_id not in sink.received
    assert all(d.sender != "cert-eu" for d in sink.received.values())
    assert stats.rejected.get("unauthorised", 0) >= 1
