"""The TAXII store: date_added order, idempotent versions, retraction, isolation."""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import stix2
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import ConfigError, MalformedRecord
from connectors.taxii import ObjectQuery, TaxiiStore, collection_id_for
from connectors.taxii.store import COLLECTION_NAMESPACE
from connectors.taxii.timestamps import format_us, parse_us
from tests.connectors.taxii.conftest import OTHER_TOPIC, TOPIC, indicator


class _FrozenClock:
    """A clock the test moves by hand, also backwards."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_collection_ids_are_uuid5_of_the_topic(tmp_path: Path) -> None:
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        info = await store.ensure_collection(TOPIC)
    assert info.id == str(uuid.uuid5(COLLECTION_NAMESPACE, TOPIC)) == collection_id_for(TOPIC)
    assert info.title == "Civilian community: indicators"
    assert collection_id_for(TOPIC) != collection_id_for(OTHER_TOPIC)


async def test_date_added_strictly_increases_even_when_the_clock_stands_or_goes_back(
    tmp_path: Path,
) -> None:
    clock = _FrozenClock()
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu", clock=clock) as store:
        first = await store.deliver(TOPIC, [indicator(1), indicator(2)])
        clock.now -= timedelta(hours=1)
        second = await store.deliver(TOPIC, [indicator(3)])
    stamps = [o.date_added_us for o in (*first.added, *second.added)]
    assert stamps == sorted(set(stamps))
    assert first.added[0].date_added == "2026-11-27T12:00:00.000000Z"
    assert first.added[1].date_added == "2026-11-27T12:00:00.000001Z"
    assert second.added[0].date_added == "2026-11-27T12:00:00.000002Z"


async def test_date_added_order_survives_a_restart(tmp_path: Path) -> None:
    clock = _FrozenClock()
    path = tmp_path / "s.sqlite3"
    async with TaxiiStore(path, "cert-eu", clock=clock) as store:
        before = await store.deliver(TOPIC, [indicator(1)])
    clock.now -= timedelta(days=1)
    async with TaxiiStore(path, "cert-eu", clock=clock) as store:
        after = await store.deliver(TOPIC, [indicator(2)])
        page = await store.query(collection_id_for(TOPIC), ObjectQuery())
    assert after.added[0].date_added_us > before.added[0].date_added_us
    assert [o.id for o in page.items] == [indicator(1).id, indicator(2).id]


async def test_same_id_and_version_twice_is_one_row(tmp_path: Path) -> None:
    ind = indicator(1)
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        first = await store.deliver(TOPIC, [ind])
        again = await store.deliver(TOPIC, [ind, json.loads(ind.serialize())])
        page = await store.query(collection_id_for(TOPIC), ObjectQuery(versions=("all",)))
    assert (len(first.added), first.duplicates) == (1, 0)
    assert (len(again.added), again.duplicates) == (0, 2)
    assert len(page.items) == 1


async def test_versions_are_keyed_by_modified_and_filtered(tmp_path: Path) -> None:
    v1 = indicator(1)
    v2 = v1.new_version(name="C2 address 1 (confirmed)", modified="2026-11-02T00:00:00.000Z")
    v3 = v2.new_version(name="C2 address 1 (sinkholed)", modified="2026-11-03T00:00:00.000Z")
    cid = collection_id_for(TOPIC)
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        # Delivered out of order: "last" means the latest `modified`, not the latest arrival.
        await store.deliver(TOPIC, [v1, v3, v2])

        async def names(*versions: str) -> list[str]:
            page = await store.query(cid, ObjectQuery(versions=versions))
            return [o.body["name"] for o in page.items]

        assert await names("last") == [v3.name]
        assert await names("first") == [v1.name]
        assert await names("all") == [v1.name, v3.name, v2.name]
        assert await names("2026-11-02T00:00:00Z") == [v2.name]
        assert await names("first", "last") == [v1.name, v3.name]


async def test_retracted_object_is_kept_as_a_revoked_new_version(tmp_path: Path) -> None:
    ind = indicator(1)
    cid = collection_id_for(TOPIC)
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        await store.deliver(TOPIC, [ind])
        revoked = await store.retract(TOPIC, ind.id)
        again = await store.retract(TOPIC, ind.id)
        unknown = await store.retract(TOPIC, "indicator--" + str(uuid.uuid4()))
        latest = await store.query(cid, ObjectQuery())
        every = await store.query(cid, ObjectQuery(versions=("all",)))
    assert revoked is not None and revoked.body["revoked"] is True
    assert parse_us(revoked.version) > parse_us(ind.modified.isoformat().replace("+00:00", "Z"))
    stix2.parse(revoked.body)  # still a valid STIX 2.1 indicator
    assert again is None and unknown is None
    assert [o.body.get("revoked", False) for o in latest.items] == [True]
    assert len(every.items) == 2


async def test_malformed_object_is_rejected_and_nothing_is_stored(tmp_path: Path) -> None:
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        with pytest.raises(MalformedRecord):
            await store.deliver(TOPIC, [indicator(1), {"type": "indicator", "id": "malware--x"}])
        page = await store.query(collection_id_for(TOPIC), ObjectQuery())
    assert page.items == ()


async def test_bundles_are_unwrapped(tmp_path: Path) -> None:
    bundle = stix2.Bundle(indicator(1), indicator(2))
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        delivery = await store.deliver(TOPIC, [json.loads(bundle.serialize())])
    assert [o.id for o in delivery.added] == [indicator(1).id, indicator(2).id]


async def test_a_store_belongs_to_one_participant(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    async with TaxiiStore(path, "cert-eu") as store:
        await store.deliver(TOPIC, [indicator(1)])
    with pytest.raises(ConfigError, match="belongs to 'cert-eu'"):
        async with TaxiiStore(path, "enisa"):
            pass


async def test_pages_follow_the_cursor_without_gaps(tmp_path: Path) -> None:
    cid = collection_id_for(TOPIC)
    async with TaxiiStore(tmp_path / "s.sqlite3", "cert-eu") as store:
        await store.deliver(TOPIC, [indicator(n) for n in range(1, 8)])
        seen: list[str] = []
        cursor = None
        while True:
            page = await store.query(cid, ObjectQuery(limit=3, after_cursor_us=cursor))
            seen += [o.id for o in page.items]
            if not page.more:
                break
            cursor = page.next_cursor
    assert seen == [indicator(n).id for n in range(1, 8)]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**52))
def test_timestamps_round_trip(us: int) -> None:
    assert parse_us(format_us(us)) == us


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(
        st.tuples(
            st.lists(st.integers(min_value=1, max_value=6), max_size=5),
            st.integers(min_value=-5_000_000, max_value=5_000_000),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_delivery_sequence_keeps_one_row_per_version_in_date_added_order(
    batches: list[tuple[list[int], int]],
) -> None:
    """Whatever arrives, duplicated or not, while the clock jumps either way."""

    async def scenario(path: Path) -> tuple[list[int], list[str], set[str]]:
        clock = _FrozenClock()
        delivered: set[str] = set()
        async with TaxiiStore(path, "cert-eu", clock=clock) as store:
            for numbers, jump_us in batches:
                clock.now += timedelta(microseconds=jump_us)
                await store.deliver(TOPIC, [indicator(n) for n in numbers])
                delivered |= {indicator(n).id for n in numbers}
            page = await store.query(
                collection_id_for(TOPIC), ObjectQuery(versions=("all",), limit=100)
            )
        return [o.date_added_us for o in page.items], [o.id for o in page.items], delivered

    with tempfile.TemporaryDirectory() as tmp:
        stamps, ids, delivered = asyncio.run(scenario(Path(tmp) / "s.sqlite3"))
    assert stamps == sorted(set(stamps))
    assert sorted(ids) == sorted(delivered)


async def test_one_sender_cannot_version_or_revoke_another_senders_object(tmp_path: Path) -> None:
    async with TaxiiStore(tmp_path / "s.sqlite3", "enisa") as store:
        original = indicator(1)
        await store.deliver(TOPIC, [original], message_id="m-cert", sender="cert-eu")
        hijack = json.loads(original.serialize())
        hijack["modified"] = "2030-01-01T00:00:00.000Z"
        hijack["pattern"] = "[ipv4-addr:value = '192.0.2.99']"
        with pytest.raises(MalformedRecord, match="was delivered by cert-eu"):
            await store.deliver(TOPIC, [hijack], message_id="m-isac", sender="isac-energy")
        assert await store.retract_message("m-isac") == ()
        # The owner may still publish a new version of its own object.
        update = json.loads(original.serialize())
        update["modified"] = "2030-01-01T00:00:00.000Z"
        added = await store.deliver(TOPIC, [update], message_id="m-cert-2", sender="cert-eu")
        assert len(added.added) == 1
