"""TAXII at scale: a page of 100 objects with 1,000 and with 1,000,000 stored, and the sink.

Run: .venv/bin/python -m bench.taxii [--objects 1000000] [--requests 100]

Two stores are filled straight through `TaxiiStore.deliver_many` (the sink's
own write path, 5,000 objects a transaction) with STIX 2.1 indicators, one in
ten objects a malware or attack pattern, one object in ten delivered again
later in a second version and one in fifty in a third (`--objects` counts
stored versions). Each store is then read through the real TAXII app
(Starlette, over httpx's ASGI transport, authenticated as the owner) the way
clients page: the first page, deep pages (the `next` chain followed from the
middle of the store), `added_after` in the middle, `match[type]=indicator`,
`match[id]` of a random object and `match[version]=all`; `limit=100` each,
p50 and p95 of `--requests` requests, and the ratio of the big store's p95 to
the small one's (the goal: the same cost, so about 1).

Then the TAXII sink (`TaxiiSink` with the subscriber's own record-to-STIX
converter) takes StixObject deliveries as the subscriber hands them over,
flushed every 500 (a consumer batch: one transaction), against the per-message
transaction it replaced (`TaxiiStore.deliver` per delivery) in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench._results import record
from broker import logs
from broker.envelope import Labels
from broker.pep.sink import Delivery
from connectors._stix_object import record_of
from connectors.isac.subscriber import stix_objects_of
from connectors.taxii import (
    Incoming,
    Refused,
    ScryptCost,
    TaxiiSink,
    TaxiiStore,
    TaxiiUsers,
    collection_id_for,
    create_app,
)

OWNER, PASSWORD = "cert-eu", "bench-only password, never a secret"
TOPIC = "jcu.civilian.indicators"
FILL_BATCH = 5_000
SINK_BATCH = 500
PAGE = 100
GOAL_P95_MS = 300.0
GOAL_SINK = 2_000.0
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _object(i: int, version: int) -> dict[str, Any]:
    """Object `i` in its `version`-th version (1-based): mostly indicators, as a feed is."""
    created = _EPOCH + timedelta(seconds=i)
    modified = _stamp(created + timedelta(days=version - 1))
    ident = uuid.UUID(int=(0x5EED << 96) | i)
    if i % 10 == 3:
        kind = "malware"
        extra: dict[str, Any] = {"name": f"family {i}", "is_family": True}
    elif i % 10 == 7:
        kind = "attack-pattern"
        extra = {"name": f"technique {i}"}
    else:
        kind = "indicator"
        extra = {
            "name": f"C2 address {i}",
            "description": "Command-and-control server seen in a phishing campaign",
            "indicator_types": ["malicious-activity"],
            "pattern": f"[ipv4-addr:value = '10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}']",
            "pattern_type": "stix",
            "valid_from": _stamp(created),
            "labels": ["phishing", "c2"],
            "confidence": 60 + version * 10,
        }
    return {
        "type": kind,
        "spec_version": "2.1",
        "id": f"{kind}--{ident}",
        "created": _stamp(created),
        "modified": modified,
        "created_by_ref": "identity--8ce3f695-d5a4-4b23-9f6c-3b0d6a4b6e2a",
        "object_marking_refs": [_GREEN],
        **extra,
    }


def _fill_batches(versions: int) -> Iterator[list[dict[str, Any]]]:
    """`versions` object versions in batches; later versions come a batch after the first."""
    batch: list[dict[str, Any]] = []
    made = i = 0
    later: list[tuple[int, int]] = []
    while made < versions:
        batch.append(_object(i, 1))
        made += 1
        if i % 10 == 0:
            later.append((i, 2))
        if i % 50 == 0:
            later.append((i, 3))
        i += 1
        if len(batch) >= FILL_BATCH or made >= versions:
            yield batch
            batch = []
            again, later = later, []
            for j, version in again:
                if made >= versions:
                    break
                batch.append(_object(j, version))
                made += 1


async def _fill(store: TaxiiStore, versions: int) -> tuple[float, str, list[str]]:
    """Fill; the seconds it took, the `date_added` half-way, and a sample of object ids."""
    t0 = time.perf_counter()
    done = 0
    middle = ""
    sample: list[str] = []
    for n, batch in enumerate(_fill_batches(versions)):
        (delivery,) = await store.deliver_many([Incoming.of(TOPIC, batch)])
        assert not isinstance(delivery, Refused), delivery
        if done <= versions // 2 < done + len(batch):
            middle = delivery.added[versions // 2 - done].date_added
        sample += [o.id for o in delivery.added[:: max(1, versions // 1000)]]
        done += len(batch)
        if versions >= 100_000 and n % 40 == 0:
            print(f"  filling: {done:>9,} of {versions:,}", flush=True)
    return time.perf_counter() - t0, middle, sample


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


async def _timed(
    get: Callable[[], Awaitable[httpx.Response]], requests: int
) -> tuple[float, float]:
    samples = []
    for _ in range(requests):
        t0 = time.perf_counter()
        resp = await get()
        samples.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 200:
            raise RuntimeError(f"{resp.status_code}: {resp.text}")
    return _percentiles(samples)


async def _pages(
    store: TaxiiStore, users: TaxiiUsers, requests: int, middle: str, ids: list[str]
) -> dict[str, tuple[float, float]]:
    app = create_app(store, OWNER, users)
    url = f"/{OWNER}/collections/{collection_id_for(TOPIC)}/objects/"
    transport = httpx.ASGITransport(app=app)
    rng = random.Random(19)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://taxii.bench", auth=(OWNER, PASSWORD)
    ) as client:
        first = await client.get(url, params={"limit": PAGE})  # pays scrypt once
        assert first.status_code == 200, first.text
        results: dict[str, tuple[float, float]] = {}

        async def first_page() -> httpx.Response:
            return await client.get(url, params={"limit": PAGE})

        results["first page"] = await _timed(first_page, requests)

        start = {"limit": PAGE, "added_after": middle}
        state: dict[str, Any] = {"next": None}

        async def deep_page() -> httpx.Response:
            params: dict[str, Any] = dict(start)
            if state["next"] is not None:
                params["next"] = state["next"]
            resp = await client.get(url, params=params)
            body = resp.json()
            state["next"] = body.get("next") if body.get("more") else None
            return resp

        await deep_page()  # the first request of the chain is an added_after one
        results["deep pages (next from the middle)"] = await _timed(deep_page, requests)

        async def added_after() -> httpx.Response:
            return await client.get(url, params=start)

        results["added_after the middle"] = await _timed(added_after, requests)

        async def by_type() -> httpx.Response:
            return await client.get(url, params={"limit": PAGE, "match[type]": "indicator"})

        results["match[type]=indicator"] = await _timed(by_type, requests)

        async def by_id() -> httpx.Response:
            return await client.get(url, params={"limit": PAGE, "match[id]": rng.choice(ids)})

        results["match[id]=<one id>"] = await _timed(by_id, requests)

        async def every_version() -> httpx.Response:
            return await client.get(url, params={"limit": PAGE, "match[version]": "all"})

        results["match[version]=all"] = await _timed(every_version, requests)
    return results


def _delivery(i: int, version: int) -> Delivery:
    obj = _object(i, version)
    now = datetime.now(UTC)
    return Delivery(
        participant=OWNER,
        message_id=str(uuid.uuid4()),
        sender="soc-fr",
        payload_type="StixObject",
        record=record_of(obj, bundle_id=f"bundle--{uuid.uuid4()}"),
        labels=Labels.of("GREEN"),
        topic=TOPIC,
        partition=0,
        offset=i,
        created=now,
        received=now,
    )


async def _sink_rates(home: Path, n: int) -> tuple[float, float, float]:
    """Deliveries/s: the batched sink, the per-message transaction, the converter alone."""
    deliveries = [_delivery(i, 1) for i in range(n)]
    t0 = time.perf_counter()
    for d in deliveries:
        stix_objects_of(d)
    convert = n / (time.perf_counter() - t0)
    async with TaxiiStore(home / "per-message.sqlite3", OWNER) as store:
        t0 = time.perf_counter()
        for d in deliveries:
            await store.deliver(
                d.topic,
                stix_objects_of(d),
                message_id=d.message_id,
                sender=d.sender,
                withdraw_on_retract=True,
            )
        single = n / (time.perf_counter() - t0)
    store = TaxiiStore(home / "batched.sqlite3", OWNER)
    await store.start()
    sink = TaxiiSink(store, stix_objects_of)
    t0 = time.perf_counter()
    for k, d in enumerate(deliveries, 1):
        await sink.deliver(d)
        if k % SINK_BATCH == 0:
            await sink.flush()
    await sink.flush()
    batched = n / (time.perf_counter() - t0)
    await sink.close()
    return batched, single, convert


async def main(big: int, requests: int, sink_n: int) -> None:
    logs.configure("console", "ERROR")
    small = min(1_000, big)
    with tempfile.TemporaryDirectory(prefix="jcu-bench-taxii-") as tmp:
        home = Path(tmp)
        users = TaxiiUsers(home / "taxii-users.json", cost=ScryptCost(n=2**12))
        users.set_password(OWNER, PASSWORD)
        latency: dict[int, dict[str, tuple[float, float]]] = {}
        for size in dict.fromkeys((small, big)):
            async with TaxiiStore(home / f"store-{size}.sqlite3", OWNER) as store:
                seconds, middle, ids = await _fill(store, size)
                mb = (home / f"store-{size}.sqlite3").stat().st_size / 1e6
                print(
                    f"filled {size:,} versions in {seconds:6.1f} s "
                    f"({size / seconds:8,.0f}/s, {mb:,.0f} MB)",
                    flush=True,
                )
                latency[size] = await _pages(store, users, requests, middle, ids)
        batched, single, convert = await _sink_rates(home, sink_n)
    print(f"\npage of {PAGE} via the TAXII app, ms, {requests} requests each")
    print(f"{'query':<36} {small:>9,} p50/p95 {big:>11,} p50/p95   p95 ratio   goal")
    for name in latency[small]:
        s50, s95 = latency[small][name]
        b50, b95 = latency[big][name]
        verdict = "met" if b95 < GOAL_P95_MS else "MISSED"
        print(
            f"{name:<36} {s50:8.1f} / {s95:6.1f}   {b50:8.1f} / {b95:6.1f}   "
            f"x{b95 / s95:6.2f}    p95 < {GOAL_P95_MS:.0f} ms at {big:,}: {verdict}"
        )
    print(f"\nTAXII sink, {sink_n:,} StixObject deliveries")
    verdict = "met" if batched >= GOAL_SINK else "MISSED"
    print(
        f"{'batched (one transaction per ' + str(SINK_BATCH) + ')':<36} {batched:8,.0f}/s"
        f"   goal >= {GOAL_SINK:,.0f}/s: {verdict}"
    )
    print(
        f"{'one transaction per delivery (before)':<36} {single:8,.0f}/s"
        f"   batched is x{batched / single:.1f}"
    )
    print(f"{'record-to-STIX converter alone':<36} {convert:8,.0f}/s")
    worst = max(p95 for _, p95 in latency[big].values())
    record("taxii", {"page_p95_ms": worst, "sink_batched_per_s": batched}, stored=big)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000, help="versions in the big store")
    parser.add_argument("--requests", type=int, default=100, help="requests per query kind")
    parser.add_argument("--deliveries", type=int, default=5_000, help="for the sink's rate")
    args = parser.parse_args()
    asyncio.run(main(args.objects, args.requests, args.deliveries))
