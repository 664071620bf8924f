"""The TAXII store as a subscriber sink (the `broker.pep` Sink protocol).

The subscriber hands over verified, decrypted broker records; TAXII serves
STIX. Turning one into the other is the job of a converter the caller
supplies (for instance the ISAC connector's record-to-STIX mapping), so the
two stay one concept each.

A consumer batch is one SQLite transaction: `deliver` checks a record (it
converts, validates and checks who owns its objects, so a record the store
would refuse is refused there, where the subscriber can dead-letter it) and
keeps it; `flush`, which the subscriber awaits before committing the batch's
offsets, writes everything kept in one commit. Redelivery after a crash is
harmless: the store keeps one row per object id and version, and one record
per message id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from broker.errors import ConfigError, MalformedRecord, SinkUnavailable
from broker.logs import get_logger
from connectors.taxii.store import Incoming, Refused, TaxiiStore

if TYPE_CHECKING:
    from broker.pep.sink import Delivery, Retracted

#: Payload types that carry objects as their source wrote them, with the source's versions:
#: a retraction withdraws those versions rather than adding a revoked one.
SOURCE_PAYLOADS = frozenset({"StixObject", "MispEvent"})

#: Turns one delivered broker record into the STIX 2.1 objects that represent it.
StixConverter = Callable[["Delivery"], Iterable[Mapping[str, Any]]]

_log = get_logger("connectors.taxii.sink")


class TaxiiSink:
    """Deliveries become STIX objects in the topic's collection; retractions revoke them."""

    def __init__(self, store: TaxiiStore, to_stix: StixConverter) -> None:
        self._store = store
        self._to_stix = to_stix
        self._pending: dict[str, Incoming] = {}  # message id -> its objects, in order
        self._claims: dict[tuple[str, str], str] = {}  # (topic, object id) -> sender

    async def deliver(self, delivery: Delivery) -> None:
        """Check `delivery` and keep it for the batch's transaction (written by `flush`)."""
        if delivery.participant != self._store.participant:
            raise ConfigError(
                f"a delivery for {delivery.participant} cannot go into "
                f"{self._store.participant}'s TAXII store"
            )
        if delivery.message_id in self._pending:
            return  # the same message twice in one batch
        incoming = Incoming.of(
            delivery.topic,
            self._to_stix(delivery),
            message_id=delivery.message_id,
            sender=delivery.sender,
            withdraw_on_retract=delivery.payload_type in SOURCE_PAYLOADS,
        )
        self._check_owners(incoming, self._store.owners(incoming.topic, incoming.object_ids))
        for oid in incoming.object_ids:
            self._claims.setdefault((incoming.topic, oid), delivery.sender)
        self._pending[delivery.message_id] = incoming

    def _check_owners(self, incoming: Incoming, stored: Mapping[str, str]) -> None:
        for oid in incoming.object_ids:
            owner = stored.get(oid) or self._claims.get((incoming.topic, oid))
            if owner is not None and owner != incoming.sender:
                raise MalformedRecord(
                    f"{oid} was delivered by {owner}; {incoming.sender} may not version it"
                )

    async def retract(self, retraction: Retracted) -> None:
        await self.flush()  # a retraction acts on what was delivered before it
        await self._store.retract_message(retraction.message_id)

    async def flush(self) -> None:
        """Write every kept delivery in one transaction; return once it is committed."""
        if not self._pending:
            return
        batch = tuple(self._pending.values())
        try:
            outcomes = await self._store.deliver_many(batch)
        except sqlite3.OperationalError as exc:
            # A full disk, a read-only directory, a lock held too long: an outage. The batch
            # stays kept, and the subscriber holds it and tries again (never a dead letter).
            raise SinkUnavailable(f"the TAXII store cannot be written now ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"the TAXII store is unreadable ({exc}): move it aside or restore it, then run "
                "again (nothing of this batch was committed)"
            ) from None
        self._pending.clear()
        self._claims.clear()
        for outcome in outcomes:
            if isinstance(outcome, Refused):
                # Only if another writer claimed an object between `deliver` and here.
                _log.error(
                    "taxii.delivery_refused",
                    message_id=outcome.message_id,
                    reason=outcome.reason,
                )

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            await self._store.stop()
