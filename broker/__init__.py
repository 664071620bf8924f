"""jcu-broker: need-to-share information exchange for the EU Joint Cyber Unit.

What a program embedding a publisher or a subscriber needs (docs/api.md):

    from broker import Labels, PepContext, Publisher, Subscriber

    node = PepContext.from_env()  # JCU_HOME, JCU_KEY_PASSPHRASE, KAFKA_BOOTSTRAP
    async with Publisher(node.identity, node) as publisher:
        await publisher.publish("Indicator", record, labels=Labels.of("GREEN"))

Nothing here does work at import time: each name is imported when first used.
"""

from typing import TYPE_CHECKING

from broker.exports import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from broker.envelope.labels import Labels
    from broker.errors import JcuError, Rejected
    from broker.kafka.clients import HouseClients, KafkaClients
    from broker.pep.checks import (
        AllOf,
        ReceiveCheck,
        Received,
        ReceivePolicy,
        arrival_checks,
        receipt_checks,
    )
    from broker.pep.context import PepContext
    from broker.pep.publisher import Publication, Publisher, PublishResult
    from broker.pep.sink import Delivery, JsonlSink, Retracted, Sink
    from broker.pep.subscriber import Subscriber, SubscriberStats

__getattr__ = lazy_exports(
    __name__,
    {
        "Labels": "broker.envelope.labels",
        **dict.fromkeys(("JcuError", "Rejected"), "broker.errors"),
        **dict.fromkeys(("HouseClients", "KafkaClients"), "broker.kafka.clients"),
        **dict.fromkeys(
            (
                "AllOf",
                "ReceiveCheck",
                "ReceivePolicy",
                "Received",
                "arrival_checks",
                "receipt_checks",
            ),
            "broker.pep.checks",
        ),
        "PepContext": "broker.pep.context",
        **dict.fromkeys(("Publication", "PublishResult", "Publisher"), "broker.pep.publisher"),
        **dict.fromkeys(("Delivery", "JsonlSink", "Retracted", "Sink"), "broker.pep.sink"),
        **dict.fromkeys(("Subscriber", "SubscriberStats"), "broker.pep.subscriber"),
    },
    globals(),
)

__all__ = [
    "AllOf",
    "Delivery",
    "HouseClients",
    "JcuError",
    "JsonlSink",
    "KafkaClients",
    "Labels",
    "PepContext",
    "Publication",
    "PublishResult",
    "Publisher",
    "ReceiveCheck",
    "ReceivePolicy",
    "Received",
    "Rejected",
    "Retracted",
    "Sink",
    "Subscriber",
    "SubscriberStats",
    "arrival_checks",
    "receipt_checks",
]
