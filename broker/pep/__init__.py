"""Policy enforcement points on Kafka: the publisher and the subscriber.

    node = PepContext.from_env()  # this node's home, keystore and Kafka connection
    async with Publisher(node.identity, node) as pub:
        result = await pub.publish("Indicator", record, labels=Labels.of("AMBER", ...))
        results = await pub.publish_many([Publication("Indicator", r, labels) for r in rs])

    async with Subscriber(node.identity, node, JsonlSink(out)) as sub:
        await sub.run(until_idle=True)

The Kafka clients (`clients`), the state stores (`audit`, `sent`, `ledger`) and
the receive checks (`arrival`, `receipt`: broker.pep.checks) can be passed in;
docs/api.md shows a program that embeds both sides.

Both sides decide with the same policy engine, seal or open with the envelope,
and write every decision to the audit log of their enforcement point.
"""

from typing import TYPE_CHECKING

from broker.exports import lazy_exports

if TYPE_CHECKING:
    from broker.pep.context import PepContext
    from broker.pep.parts import Part, Redactor, Restriction
    from broker.pep.publisher import CommunityCopy, Publication, Publisher, PublishResult, Reach
    from broker.pep.sent import SourceRef
    from broker.pep.sink import Delivery, JsonlSink, Retracted, Sink
    from broker.pep.subscriber import Subscriber, SubscriberStats

# Each name is imported when first used: a publisher does not load the subscriber.
__getattr__ = lazy_exports(
    __name__,
    {
        "PepContext": "broker.pep.context",
        **dict.fromkeys(("Part", "Redactor", "Restriction"), "broker.pep.parts"),
        **dict.fromkeys(
            ("CommunityCopy", "Publication", "Publisher", "PublishResult", "Reach"),
            "broker.pep.publisher",
        ),
        "SourceRef": "broker.pep.sent",
        **dict.fromkeys(("Delivery", "JsonlSink", "Retracted", "Sink"), "broker.pep.sink"),
        **dict.fromkeys(("Subscriber", "SubscriberStats"), "broker.pep.subscriber"),
    },
    globals(),
)

__all__ = [
    "CommunityCopy",
    "Delivery",
    "JsonlSink",
    "Part",
    "PepContext",
    "Publication",
    "PublishResult",
    "Publisher",
    "Reach",
    "Redactor",
    "Restriction",
    "Retracted",
    "Sink",
    "SourceRef",
    "Subscriber",
    "SubscriberStats",
]
