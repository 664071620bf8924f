"""Audit log throughput: records appended per second, checkpoints every 1,000 records.

Run: KAFKA_BOOTSTRAP=127.0.0.1:9092 .venv/bin/python -m bench.audit [--records 20000]

Measured in this run, on fresh one-partition topics of the given broker, with
the same number of records of the same size and the same number in flight:
- baseline: producing the encoded audit records with a bare aiokafka producer
  (idempotent, acks=all), i.e. what any decision log on Kafka must pay;
- audit: `AuditLog.append` (Avro encoding, leaf hashing, Merkle append, the
  produce, awaiting each acknowledgement, a signed checkpoint every 1,000);
- the audit log's own CPU work alone (encode + hash + tree, no I/O);
- verification of what was written: recomputing the tree and checking every
  checkpoint (reading the topics back is not timed), in records/s.
Printed: each rate, and the audit log's cost over the baseline as a ratio and
as a share (goal: under 10% on top of the produce it cannot avoid).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker import logs
from broker.audit import AuditLog, AuditRecord, verify
from broker.audit._codec import encode_leaf
from broker.audit.keys import AuditKeys
from broker.audit.topic import read_topic
from broker.kafka.connection import KafkaConnection
from broker.kafka.topics import TopicSpec, ensure_topics
from broker.merkle import MerkleTree, leaf_hash
from broker.schemas import SchemaStore

EP = "bench/publish"
CHECKPOINT_EVERY = 1000
KEY = AuditKeys(bytes(32)).require(EP)  # the bench's own: sealing costs what it costs


def _records(n: int) -> list[AuditRecord]:
    return [
        AuditRecord(
            action="publish",
            organisation=("enisa", "isac-energy", "europol-ec3")[i % 3],
            message_id=str(uuid.uuid4()),
            decision="deny" if i % 7 == 0 else "allow",
            content_hash=os.urandom(32),
            labels={"tlp": "AMBER", "categories": ["malicious-code"], "member_states": ["BE"]},
            rule_ids=("tlp-amber-community", "baseline-mandate"),
            legal_basis=("Regulation (EU) 2019/881, art. 7",),
            reasons=("member of the community", "mandate covers category 'malicious-code'"),
            policy_bundle_hash="ab" * 32,
        )
        for i in range(n)
    ]


def _cpu_only(store: SchemaStore, records: list[AuditRecord]) -> float:
    start = time.perf_counter()
    tree = MerkleTree()
    previous = b""
    for i, r in enumerate(records):
        data = encode_leaf(store, EP, i, previous, r, KEY)
        previous = leaf_hash(data)
        tree.append(previous)
    tree.root()
    return time.perf_counter() - start


def _tree_only(values: list[bytes]) -> float:
    """The Merkle work alone: leaf hash and append per record, on already-encoded records."""
    start = time.perf_counter()
    tree = MerkleTree()
    for v in values:
        tree.append(leaf_hash(v))
    tree.root()
    return time.perf_counter() - start


async def _windowed(calls: list[Any], window: int) -> None:
    for i in range(0, len(calls), window):
        await asyncio.gather(*(c() for c in calls[i : i + window]))


async def _raw_produce(
    kafka: KafkaConnection,
    topic: str,
    window: int,
    values: list[bytes] | None = None,
    store: SchemaStore | None = None,
    records: list[AuditRecord] | None = None,
) -> float:
    """Produce pre-encoded `values`, or encode `records` as it goes (a log without a tree)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **kafka.client_options(), enable_idempotence=True, acks="all", linger_ms=2
    )
    await producer.start()
    key = EP.encode()
    try:
        start = time.perf_counter()
        n = len(values) if values is not None else len(records or ())
        for i in range(0, n, window):
            # The idiomatic fast path: enqueue a window of sends, then await their acks.
            if values is not None:
                batch = values[i : i + window]
            else:
                assert store is not None and records is not None
                batch = [
                    encode_leaf(store, EP, j, b"", r, KEY)
                    for j, r in enumerate(records[i : i + window], i)
                ]
            futures = [await producer.send(topic, value=v, key=key, partition=0) for v in batch]
            await asyncio.gather(*futures)
        return time.perf_counter() - start
    finally:
        await producer.stop()


async def _audit(
    kafka: KafkaConnection,
    topics: tuple[str, str],
    store: SchemaStore,
    records: list[AuditRecord],
    window: int,
    state: Path,
    batched: bool,
) -> float:
    key = ed25519.Ed25519PrivateKey.generate()
    log = AuditLog(
        EP,
        key,
        kafka,
        state,
        checkpoint_every=CHECKPOINT_EVERY,
        checkpoint_interval=3600,
        store=store,
        decisions_topic=topics[0],
        checkpoints_topic=topics[1],
    )
    await log.start()
    try:
        start = time.perf_counter()
        if batched:
            for i in range(0, len(records), window):
                await log.append_many(records[i : i + window])
        else:  # one awaited append per decision, many at once, as enforcement points do
            await _windowed([lambda r=r: log.append(r) for r in records], window)
        elapsed = time.perf_counter() - start
    finally:
        await log.stop()
    # Verify what was written (reading is not timed; recomputing and checking is).
    decisions = await read_topic(kafka, topics[0], store=store)
    checkpoints = await read_topic(kafka, topics[1], store=store)
    t0 = time.perf_counter()
    report = verify(store, decisions, checkpoints, lambda ep: [key.public_key()])
    verify_s = time.perf_counter() - t0
    (ep,) = report.reports
    assert ep.ok and ep.records == len(records), ep.failure
    print(
        f"  (verified {ep.records} records, {ep.checkpoints} checkpoints in {verify_s:.2f} s "
        f"= {ep.records / verify_s:,.0f} records/s)"
    )
    return elapsed


async def _round(
    kafka: KafkaConnection,
    store: SchemaStore,
    records: list[AuditRecord],
    values: list[bytes],
    window: int,
) -> dict[str, float]:
    """One measurement of each baseline and each way of appending, each on fresh topics."""
    from aiokafka.admin import AIOKafkaAdminClient

    suffix = uuid.uuid4().hex[:8]
    names = [f"bench.audit.{what}.{suffix}" for what in ("raw", "plain", "d1", "c1", "d2", "c2")]
    await ensure_topics(kafka, [TopicSpec(t, partitions=1) for t in names])
    out: dict[str, float] = {}
    try:
        out["raw"] = await _raw_produce(kafka, names[0], window, values=values)
        out["plain"] = await _raw_produce(kafka, names[1], window, store=store, records=records)
        with tempfile.TemporaryDirectory() as state:
            out["append"] = await _audit(
                kafka, (names[2], names[3]), store, records, window, Path(state), False
            )
        with tempfile.TemporaryDirectory() as state:
            out["append_many"] = await _audit(
                kafka, (names[4], names[5]), store, records, window, Path(state), True
            )
    finally:
        admin = AIOKafkaAdminClient(**kafka.client_options())
        await admin.start()
        try:
            await admin.delete_topics(names)
        finally:
            await admin.close()
    return out


async def _main(kafka: KafkaConnection, n: int, window: int, rounds: int) -> None:
    store = SchemaStore.load(Path(__file__).resolve().parents[1] / "schemas")
    records = _records(n)
    values = [encode_leaf(store, EP, i, bytes(32), r, KEY) for i, r in enumerate(records)]
    size = sum(len(v) for v in values) / n
    print(
        f"audit log bench: {n} records of ~{size:.0f} bytes, {window} in flight, "
        f"checkpoint every {CHECKPOINT_EVERY}, best of {rounds} rounds, broker {kafka.describe()}"
    )
    # Warm-up: the broker's JIT and the client's connections, not measured.
    await _round(kafka, store, records[: n // 4], values[: n // 4], window)
    best: dict[str, float] = {}
    for _ in range(rounds):
        for k, v in (await _round(kafka, store, records, values, window)).items():
            best[k] = min(v, best.get(k, v))
    cpu = min(_cpu_only(store, records) for _ in range(rounds))
    merkle = min(_tree_only(values) for _ in range(rounds))
    rate = {k: n / v for k, v in best.items()}
    print(f"  baseline A, produce pre-encoded records   : {rate['raw']:>9,.0f} records/s")
    print(f"  baseline B, encode + produce (no tree)    : {rate['plain']:>9,.0f} records/s")
    print(f"  AuditLog.append (one await per decision)  : {rate['append']:>9,.0f} records/s")
    print(f"  AuditLog.append_many (a window at a time) : {rate['append_many']:>9,.0f} records/s")
    print(f"  audit CPU alone (Avro + hashes + tree)    : {n / cpu:>9,.0f} records/s")
    print(
        f"  Merkle work alone (leaf hash + append)    : {n / merkle:>9,.0f} records/s = "
        f"{merkle / best['plain']:.1%} of baseline B time"
    )
    for name in ("append", "append_many"):
        t = best[name]
        print(
            f"  {name:<11}: {t / best['raw']:.2f}x baseline A time, {t / best['plain']:.2f}x "
            f"baseline B time; cost of tree, chaining and checkpoints over B: "
            f"{(t - best['plain']) / best['plain']:+.1%} (goal < 10%: "
            f"{'met' if t - best['plain'] < 0.10 * best['plain'] else 'NOT met'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--window", type=int, default=1000, help="appends in flight at once")
    parser.add_argument("--rounds", type=int, default=3, help="measurements; the best counts")
    args = parser.parse_args()
    logs.configure("console", "WARNING")
    asyncio.run(_run(args.records, args.window, args.rounds))


async def _run(n: int, window: int, rounds: int) -> None:
    """On KAFKA_BOOTSTRAP (with its admin's client settings) or a local secured cluster."""
    from bench._kafka import kafka_for_bench

    async with kafka_for_bench() as kafka:
        await _main(kafka.admin, n, window, rounds)


if __name__ == "__main__":
    main()
