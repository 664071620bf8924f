"""The TAXII store behind the subscriber's Sink protocol: deliver, redeliver, retract."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import stix2
from structlog.testing import capture_logs

from broker.envelope import Labels
from broker.errors import ConfigError, MalformedRecord, SinkUnavailable
from broker.pep.sink import Delivery, Retracted
from connectors.taxii import Delivery as StoreDelivery
from connectors.taxii import (
    Incoming,
    ObjectQuery,
    Refused,
    TaxiiSink,
    TaxiiStore,
    collection_id_for,
)
from tests.connectors.taxii.conftest import TOPIC

WHEN = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def indicator_to_stix(delivery: Delivery) -> list[Mapping[str, Any]]:
    """A converter as the subscriber would pass one: an Indicator record to STIX."""
    record = delivery.record
    return [
        stix2.Indicator(
            id=f"indicator--{record['id']}",
            name=record["name"],
            pattern=record["pattern"],
            pattern_type="stix",
            valid_from=WHEN,
            created=WHEN,
            modified=WHEN,
        )
    ]


def delivery(message_id: str, participant: str = "cert-eu") -> Delivery:
    return Delivery(
        participant=participant,
        message_id=message_id,
        sender="soc-fr",
        payload_type="Indicator",
        record={
            "id": "6f1c7a52-8e5b-4a43-9f5e-0c9d2b1f7a10",
            "name": "C2 address",
            "pattern": "[ipv4-addr:value = '203.0.113.9']",
        },
        labels=Labels.of("GREEN"),
        topic=TOPIC,
        partition=0,
        offset=7,
        created=WHEN,
        received=WHEN,
    )


async def test_deliver_twice_then_retract(tmp_path: Path) -> None:
    store = TaxiiStore(tmp_path / "s.sqlite3", "cert-eu")
    await store.start()
    sink = TaxiiSink(store, indicator_to_stix)
    await sink.deliver(delivery("m-1"))
    await sink.flush()
    await sink.deliver(delivery("m-1"))  # redelivered after a crash before the commit
    await sink.flush()
    cid = collection_id_for(TOPIC)
    assert len((await store.query(cid, ObjectQuery(versions=("all",)))).items) == 1
    retraction = Retracted(
        participant="cert-eu",
        message_id="m-1",
        sender="soc-fr",
        reason="false positive",
        retracted=WHEN,
    )
    await sink.retract(retraction)
    await sink.retract(retraction)
    latest = (await store.query(cid, ObjectQuery())).items
    assert [o.body["revoked"] for o in latest] == [True]
    assert len((await store.query(cid, ObjectQuery(versions=("all",)))).items) == 2
    await sink.close()


async def test_a_delivery_for_someone_else_is_refused(tmp_path: Path) -> None:
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        with pytest.raises(ConfigError, match="enisa"):
            await TaxiiSink(store, indicator_to_stix).deliver(delivery("m-2", "enisa"))


class _CountingStore(TaxiiStore):
    """A real store that counts the transactions the sink asks for."""

    transactions = 0

    async def deliver_many(self, batch: Sequence[Incoming]) -> tuple[StoreDelivery | Refused, ...]:
        self.transactions += 1
        return await super().deliver_many(batch)


def indicator_delivery(message_id: str, n: int, sender: str = "soc-fr") -> Delivery:
    return dataclasses.replace(
        delivery(message_id),
        sender=sender,
        record={
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:test:record:{n}")),
            "name": f"C2 address {n}",
            "pattern": f"[ipv4-addr:value = '203.0.113.{n}']",
        },
    )


async def test_a_consumer_batch_is_one_transaction_written_at_flush(tmp_path: Path) -> None:
    async with _CountingStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        sink = TaxiiSink(store, indicator_to_stix)
        for n in range(5):
            await sink.deliver(indicator_delivery(f"m-{n}", n))
        await sink.deliver(indicator_delivery("m-0", 0))  # the same message again in the batch
        cid = collection_id_for(TOPIC)
        assert (await store.query(cid, ObjectQuery())).items == ()  # nothing before flush
        await sink.flush()
        await sink.flush()  # nothing left: no empty transaction either
        assert store.transactions == 1
        assert len((await store.query(cid, ObjectQuery())).items) == 5


async def test_a_store_that_cannot_be_written_is_an_outage_and_keeps_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk at flush is a sink outage (the subscriber holds the batch and retries),
    never a crash or a dead letter; the kept deliveries are written by the next flush."""
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        sink = TaxiiSink(store, indicator_to_stix)
        for n in range(3):
            await sink.deliver(indicator_delivery(f"m-{n}", n))
        real = store._deliver_many_sync

        def full(batch: Any) -> Any:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(store, "_deliver_many_sync", full)
        with pytest.raises(SinkUnavailable, match="disk is full"):
            await sink.flush()
        monkeypatch.setattr(store, "_deliver_many_sync", real)
        await sink.flush()
        cid = collection_id_for(TOPIC)
        assert len((await store.query(cid, ObjectQuery())).items) == 3


async def test_a_record_the_store_would_refuse_is_refused_at_deliver(tmp_path: Path) -> None:
    """So the subscriber dead-letters that one record, not the batch: another sender's
    version of an object, whether the object is stored or only earlier in the same batch."""
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        sink = TaxiiSink(store, indicator_to_stix)
        await sink.deliver(indicator_delivery("m-1", 1, sender="soc-fr"))
        with pytest.raises(MalformedRecord, match="delivered by soc-fr; isac-energy may not"):
            await sink.deliver(indicator_delivery("m-2", 1, sender="isac-energy"))
        await sink.flush()
        with pytest.raises(MalformedRecord, match="delivered by soc-fr; isac-energy may not"):
            await sink.deliver(indicator_delivery("m-3", 1, sender="isac-energy"))
        await sink.deliver(indicator_delivery("m-4", 4, sender="isac-energy"))
        await sink.flush()
        page = await store.query(collection_id_for(TOPIC), ObjectQuery(versions=("all",)))
    assert [o.body["name"] for o in page.items] == ["C2 address 1", "C2 address 4"]


async def test_a_claim_lost_to_another_writer_before_flush_is_logged_and_the_rest_stored(
    tmp_path: Path,
) -> None:
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        sink = TaxiiSink(store, indicator_to_stix)
        await sink.deliver(indicator_delivery("m-1", 1, sender="soc-fr"))
        await sink.deliver(indicator_delivery("m-2", 2, sender="soc-fr"))
        # another process writing the same store claims object 1 first
        other = indicator_to_stix(indicator_delivery("m-x", 1, sender="isac-energy"))
        await store.deliver(TOPIC, other, message_id="m-x", sender="isac-energy")
        with capture_logs() as logs:
            await sink.flush()
        page = await store.query(collection_id_for(TOPIC), ObjectQuery(versions=("all",)))
    refused = [e for e in logs if e["event"] == "taxii.delivery_refused"]
    assert [(e["message_id"], e["log_level"]) for e in refused] == [("m-1", "error")]
    assert "was delivered by isac-energy" in refused[0]["reason"]
    assert sorted(o.body["name"] for o in page.items) == ["C2 address 1", "C2 address 2"]
    assert len(page.items) == 2  # object 1 once (isac-energy's), object 2 from the batch


async def test_a_retraction_in_the_same_batch_acts_on_the_delivery_before_it(
    tmp_path: Path,
) -> None:
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        sink = TaxiiSink(store, indicator_to_stix)
        await sink.deliver(indicator_delivery("m-1", 1))
        await sink.retract(
            Retracted(
                participant="cert-eu",
                message_id="m-1",
                sender="soc-fr",
                reason="false positive",
                retracted=WHEN,
            )
        )
        await sink.flush()
        latest = await store.query(collection_id_for(TOPIC), ObjectQuery())
    assert [o.body.get("revoked") for o in latest.items] == [True]
