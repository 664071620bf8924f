"""Policy enforcement points on Kafka: the publisher and the subscriber.

    async with Publisher.create("cert-eu", settings) as pub:
        result = await pub.publish("Indicator", record, labels=Labels.of("AMBER", ...))
        results = await pub.publish_many([Publication("Indicator", r, labels) for r in rs])

    async with Subscriber.create("enisa", settings, sink=JsonlSink(out)) as sub:
        await sub.run(until_idle=True)

Both sides decide with the same policy engine, seal or open with the envelope,
and write every decision to the audit log of their enforcement point.
"""

from broker.pep.parts import Part, Redactor, Restriction
from broker.pep.publisher import CommunityCopy, Publication, Publisher, PublishResult, Reach
from broker.pep.sent import SourceRef
from broker.pep.sink import Delivery, JsonlSink, Retracted, Sink
from broker.pep.subscriber import Subscriber, SubscriberStats

__all__ = [
    "CommunityCopy",
    "Delivery",
    "JsonlSink",
    "Part",
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
