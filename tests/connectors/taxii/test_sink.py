"""The TAXII store behind the subscriber's Sink protocol: deliver, redeliver, retract."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import stix2

from broker.envelope import Labels
from broker.errors import ConfigError
from broker.pep.sink import Delivery, Retracted
from connectors.taxii import ObjectQuery, TaxiiSink, TaxiiStore, collection_id_for
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
