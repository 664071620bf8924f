"""The TAXII store as a subscriber sink (the `broker.pep` Sink protocol).

The subscriber hands over verified, decrypted broker records; TAXII serves
STIX. Turning one into the other is the job of a converter the caller
supplies (for instance the ISAC connector's record-to-STIX mapping), so the
two stay one concept each. Redelivery after a crash is harmless: the store
keeps one row per object id and version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from broker.errors import ConfigError
from connectors.taxii.store import TaxiiStore

if TYPE_CHECKING:
    from broker.pep.sink import Delivery, Retracted

#: Payload types that carry objects as their source wrote them, with the source's versions:
#: a retraction withdraws those versions rather than adding a revoked one.
SOURCE_PAYLOADS = frozenset({"StixObject", "MispEvent"})

#: Turns one delivered broker record into the STIX 2.1 objects that represent it.
StixConverter = Callable[["Delivery"], Iterable[Mapping[str, Any]]]


class TaxiiSink:
    """Deliveries become STIX objects in the topic's collection; retractions revoke them."""

    def __init__(self, store: TaxiiStore, to_stix: StixConverter) -> None:
        self._store = store
        self._to_stix = to_stix

    async def deliver(self, delivery: Delivery) -> None:
        if delivery.participant != self._store.participant:
            raise ConfigError(
                f"a delivery for {delivery.participant} cannot go into "
                f"{self._store.participant}'s TAXII store"
            )
        objects = list(self._to_stix(delivery))
        await self._store.deliver(
            delivery.topic,
            objects,
            message_id=delivery.message_id,
            sender=delivery.sender,
            withdraw_on_retract=delivery.payload_type in SOURCE_PAYLOADS,
        )

    async def retract(self, retraction: Retracted) -> None:
        await self._store.retract_message(retraction.message_id)

    async def flush(self) -> None:
        return None  # the store commits every delivery before `deliver` returns

    async def close(self) -> None:
        await self._store.stop()
