"""The full path against raw Kafka, in one run: publish through delivery vs produce + consume.

Run: .venv/bin/python -m bench.pipeline [--messages 3000]

Both legs carry the same number of records of the same size (the sealed
envelope's size) through the same broker, with the same producer settings
(idempotent, acks=all, zstd) and one consumer, timed from the first produce to
the last record consumed (raw) or delivered to the sink (full path), in steady
state: one warm-up record goes through each leg first (consumer joined,
partitions assigned, subscriber process started). The full
path is: policy decision for every organisation, one envelope for 5 recipients
(AES-256-GCM, HPKE X25519, Ed25519 over a Merkle root per batch of 200), every
decision audited (one leaf per message), then on the receiving side verify,
unwrap, decrypt, policy re-check, audit, dedup ledger, JSON-lines sink, offset
commit. The publisher runs in this process and
`jcu subscribe` in another, as they are deployed (two services, two cores).
Receipts are off in both legs (`--receipts` turns them on for the full path and
the skeleton: one signed receipt per sender and consumer batch).

Kafka: KAFKA_BOOTSTRAP if set, else a local broker started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench import _skeleton as _skeleton_io
from bench._kafka import BenchKafka, federation_homes, kafka_for_bench
from bench._load import CHUNK, RECIPIENTS, count_lines, cpu_seconds, indicator, raw_consumer
from bench._results import record
from broker import config, logs
from broker.envelope import Labels
from broker.kafka.clients import COMPRESSION, reliable_producer
from broker.kafka.connection import CONFIG_ENV, KafkaConnection
from broker.kafka.topics import TopicSpec, ensure_topics
from broker.pep import Publication, Publisher
from broker.pep.context import PepContext


async def _raw(
    kafka: KafkaConnection, n: int, size: int, kafka_pid: int | None
) -> tuple[float, dict[str, float]]:
    from aiokafka import AIOKafkaProducer

    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [TopicSpec(topic, partitions=3)])
    value = os.urandom(size)  # encrypted bytes do not compress; neither does this
    producer = AIOKafkaProducer(
        **kafka.client_options(),
        enable_idempotence=True,
        acks="all",
        compression_type=COMPRESSION,
        linger_ms=5,
        max_batch_size=512 * 1024,  # the publisher's settings
    )
    consumer = raw_consumer(kafka, topic)
    await producer.start()
    await consumer.start()

    async def consume(n: int) -> None:
        got = 0
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            got += sum(len(v) for v in batch.values())
            if batch:
                await consumer.commit()

    try:
        await (await producer.send(topic, value, key=b"warm-up"))
        await consume(1)  # the consumer has joined its group and holds its partitions
        kafka0 = cpu_seconds(kafka_pid) if kafka_pid else 0.0
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        futures = [await producer.send(topic, value, key=str(i).encode()) for i in range(n)]
        await asyncio.gather(*futures)
        await consume(n)
        total = time.perf_counter() - t0
        return total, {
            "publisher cpu": time.process_time() - cpu0,  # producer and consumer, one process
            "subscriber cpu": 0.0,
            "kafka cpu": cpu_seconds(kafka_pid) - kafka0 if kafka_pid else 0.0,
        }
    finally:
        await producer.stop()
        await consumer.stop()


async def _delivered(sink: Path, count: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until `count` lines are in the sink; fail if the receiving process died."""
    while count_lines(sink) < count:
        if process.poll() is not None:
            raise RuntimeError(f"the receiving process exited: {log.read_text()[-2000:]}")
        await asyncio.sleep(0.01)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


async def _full(
    ctx: PepContext,
    n: int,
    out: Path,
    receipts: bool,
    kafka_pid: int | None,
    receiver_env: dict[str, str],
) -> tuple[float, int, dict[str, float]]:
    """Publish in this process while `jcu subscribe` receives in another, as deployed:
    timed from the first publish to the n-th record in the subscriber's sink."""
    labels = Labels.of("RED", categories=["malicious-code"])
    records = [indicator(i, "c2") for i in range(n)]
    sink_file = out / "enisa.jsonl"
    argv = [
        sys.executable,
        "-m",
        "broker.cli",
        "subscribe",
        "--as",
        "enisa",
        "--out",
        str(out),
        "--group",
        f"enisa.bench.{uuid.uuid4().hex[:6]}",
    ]
    if not receipts:
        argv.append("--no-receipts")
    log = out / "subscriber.log"
    subscriber = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=receiver_env
    )
    try:
        async with Publisher("soc-fr", ctx) as pub:
            # Steady state, as in the raw leg: the subscriber is up and holds its partitions.
            await pub.publish(
                "Indicator", indicator(-1, "c2"), labels=labels, recipients=RECIPIENTS
            )
            await _delivered(sink_file, 1, subscriber, log)
            kafka0 = cpu_seconds(kafka_pid) if kafka_pid else 0.0
            cpu0 = time.process_time(), cpu_seconds(subscriber.pid)
            t0 = time.perf_counter()
            size = 0
            for start in range(0, n, CHUNK):
                results = await pub.publish_many(
                    [
                        Publication("Indicator", r, labels, RECIPIENTS)
                        for r in records[start : start + CHUNK]
                    ]
                )
                size = results[-1].copies[0].size
            t_pub = time.perf_counter() - t0
            pub_cpu = time.process_time() - cpu0[0]
        await _delivered(sink_file, n + 1, subscriber, log)
        total = time.perf_counter() - t0
        sub_cpu = cpu_seconds(subscriber.pid) - cpu0[1]
        kafka_cpu = cpu_seconds(kafka_pid) - kafka0 if kafka_pid else 0.0
    finally:
        _stop(subscriber)
    return (
        total,
        size,
        {
            "publish": t_pub,
            "publisher cpu": pub_cpu,
            "subscriber cpu": sub_cpu,
            "kafka cpu": kafka_cpu,
        },
    )


async def _skeleton(
    kafka: BenchKafka,
    n: int,
    sizes: _skeleton_io.Sizes,
    out: Path,
    receipts: tuple[int, float] | None = None,
) -> tuple[float, dict[str, float]]:
    """The full path's Kafka I/O without its security work (see bench/_skeleton.py),
    timed the same way: steady state, first produce to the n-th line in the sink;
    `receipts`: a sealed receipt's (base, per message) size, when the full path sent them."""
    topic = f"bench.skeleton.{uuid.uuid4().hex[:8]}"
    audit_topic = f"{topic}.audit"
    kafka_pid = kafka.pid
    await ensure_topics(kafka.admin, [TopicSpec(topic, partitions=3), TopicSpec(audit_topic)])
    sink_file, log = out / "skeleton.lines", out / "skeleton.log"
    argv = [sys.executable, "-m", "bench._skeleton", topic, audit_topic]
    if receipts is not None:
        receipt_topic = f"{topic}.receipts"
        await ensure_topics(kafka.admin, [TopicSpec(receipt_topic, partitions=3)])
        argv += _skeleton_io.ReceiptSize(receipt_topic, *receipts).argv()
    receiver = subprocess.Popen(
        [*argv, str(sink_file), *sizes.argv()],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env={**os.environ, CONFIG_ENV: str(kafka.admin_file)},
    )
    producer = reliable_producer(kafka.admin)
    await producer.start()
    try:
        await _skeleton_io.publish(producer, topic, audit_topic, 1, sizes)
        await _delivered(sink_file, 1, receiver, log)
        kafka0 = cpu_seconds(kafka_pid) if kafka_pid else 0.0
        cpu0 = time.process_time(), cpu_seconds(receiver.pid)
        t0 = time.perf_counter()
        await _skeleton_io.publish(producer, topic, audit_topic, n, sizes)
        pub_cpu = time.process_time() - cpu0[0]
        await _delivered(sink_file, n + 1, receiver, log)
        total = time.perf_counter() - t0
        cpu = {
            "publisher cpu": pub_cpu,
            "subscriber cpu": cpu_seconds(receiver.pid) - cpu0[1],
            "kafka cpu": cpu_seconds(kafka_pid) - kafka0 if kafka_pid else 0.0,
        }
    finally:
        await producer.stop()
        _stop(receiver)
    return total, cpu


def _costs(
    ctx: PepContext, receiver: PepContext, n: int
) -> tuple[dict[str, float], tuple[int, int]]:
    """Seconds the CPU-bound steps take, per message as the full path does them, times n;
    and the sizes of the publisher's and the subscriber's audit leaf for one message."""
    from broker.audit import AuditKeys, AuditRecord, DecisionSet
    from broker.audit._codec import LeafSealer
    from broker.audit.record import new_decision_ids
    from broker.envelope import EnvelopeReader, MemoryReplayGuard, SealRequest
    from broker.merkle import MerkleTree, leaf_hash
    from broker.pep.publisher import policy_message

    sealer = ctx.envelope.sealer("soc-fr")
    opener = receiver.envelope.opener("enisa", replay_guard=MemoryReplayGuard())
    labels = Labels.of("RED", categories=["malicious-code"])
    msg = policy_message("soc-fr", "Indicator", labels, RECIPIENTS)
    k = CHUNK * 5
    records = [indicator(i, "c2") for i in range(k)]
    t = time.perf_counter()
    for _ in range(k):
        ctx.policy.decide_all(msg)
    decide = (time.perf_counter() - t) / k
    topic = "jcu.civilian.indicators"
    # Keys opened before the clock starts, as a running publisher and subscriber hold them:
    # each keystore's first key costs its scrypt (a quarter of a second), which had been
    # charged to the first envelope sealed or opened and, spread over k, read as 250 µs
    # more a message to open.
    warm = sealer.seal_many(
        [SealRequest("Indicator", records[0], recipients=RECIPIENTS, topic=topic, labels=labels)]
    )
    receiver.envelope.opener("enisa", replay_guard=MemoryReplayGuard()).open(
        warm[0].data, topic=topic
    )
    t = time.perf_counter()
    sealed = []
    for start in range(0, k, CHUNK):
        sealed += sealer.seal_many(
            [
                SealRequest("Indicator", r, recipients=RECIPIENTS, topic=topic, labels=labels)
                for r in records[start : start + CHUNK]
            ]
        )
    seal = (time.perf_counter() - t) / k
    # As the subscriber opens a record: its envelope decoded by the sender-batch reader, then
    # opened (the batch's signature checked once, each key unwrapped, each body decrypted).
    reader = EnvelopeReader(receiver.envelope.store)
    t = time.perf_counter()
    for s in sealed:
        opener.open(s.data, topic=topic, decoded=reader.decode(s.data))
    open_ = (time.perf_counter() - t) / k

    decisions = tuple(ctx.policy.decide_all(msg))
    keys = AuditKeys(bytes(32))
    publishing = LeafSealer(ctx.envelope.store, "soc-fr/publish", keys.require("soc-fr/publish"))
    receiving = LeafSealer(ctx.envelope.store, "enisa/receive", keys.require("enisa/receive"))
    tree = MerkleTree()
    avro_labels = labels.to_avro()
    previous = b"\0" * 32  # a leaf after the first carries its predecessor's hash
    message_ids = [str(uuid.uuid4()) for _ in range(k)]  # made by the publisher, not the log
    t = time.perf_counter()
    for i in range(k):
        dset = DecisionSet(
            "publish",
            message_ids[i],
            decisions,
            content_hash=b"\0" * 32,
            labels=avro_labels,
            policy_bundle_hash=ctx.policy.bundle_hash,
        )
        ids = new_decision_ids(len(decisions))
        leaf = publishing.leaf_of_set(i, previous, dset, ids)  # encoded, sealed, keyed hash
        tree.append(leaf_hash(leaf))
    audit = (time.perf_counter() - t) / k
    # ... then, once the envelopes are in Kafka, the leaf saying where each copy went,
    # written as the publisher writes it (a SendOutcome, no AuditRecord per recipient).
    from broker.audit.acts import CopyOutcome, SendOutcome

    t = time.perf_counter()
    for i in range(k):
        copy = CopyOutcome("civilian", topic, RECIPIENTS, 0, i)
        outcome = SendOutcome(message_ids[i], (copy,))
        sent_ids = new_decision_ids(outcome.count)
        sent_leaf = publishing.leaf_of_set(k + i, previous, outcome, sent_ids)
        tree.append(leaf_hash(sent_leaf))
    sent_audit = (time.perf_counter() - t) / k
    # The receiving side: one AuditRecord (its receive decision) in a leaf per message,
    # its id from a pool of 256 as the subscriber draws them.
    receive_tree = MerkleTree()
    t = time.perf_counter()
    pool: list[str] = []
    for i in range(k):
        if not pool:
            pool = list(new_decision_ids(256))
        record = AuditRecord.from_decision(
            decisions[0],
            action="receive",
            message_id=message_ids[i],
            content_hash=b"\0" * 32,
            labels=avro_labels,
            bundle_hash=ctx.policy.bundle_hash,
            decision_id=pool.pop(),
        )
        receive_leaf = receiving.leaf(i, previous, [record])
        receive_tree.append(leaf_hash(receive_leaf))
    receive_audit = (time.perf_counter() - t) / k
    costs = {
        f"audit: one leaf of {len(decisions)} decisions": audit * n,
        f"audit: its send-outcome leaf ({len(RECIPIENTS)} records)": sent_audit * n,
        "audit: one receive leaf": receive_audit * n,
        f"policy decide_all ({len(decisions)} orgs)": decide * n,
        f"seal (5 recipients, batches of {CHUNK})": seal * n,
        "open (batch verify+unwrap+decrypt)": open_ * n,
    }
    return costs, (len(leaf), len(receive_leaf))


def _receipt_size(receiver: PepContext) -> tuple[int, float]:
    """A sealed batch receipt's size, as enisa's node seals it to soc-fr: (base bytes,
    bytes per message it covers), from receipts of 1 and of a full consumer batch."""
    from broker.pep.receipts import batch_receipt

    sealer = receiver.envelope.sealer("enisa")
    now = datetime.now(UTC)

    def size(count: int) -> int:
        receipt = batch_receipt("enisa", [(str(uuid.uuid4()), now) for _ in range(count)])
        sealed = sealer.seal(
            "Receipt",
            receipt,
            recipients=["soc-fr"],
            topic="jcu.civilian.receipts",
            labels=Labels.of("RED", categories=["malicious-code"]),
        )
        return len(sealed.data)

    one, full = size(1), size(_skeleton_io.MAX_RECORDS)
    per_message = (full - one) / (_skeleton_io.MAX_RECORDS - 1)
    return one - round(per_message), per_message


async def main(n: int, receipts: bool) -> None:
    logs.configure("console", "WARNING")
    with tempfile.TemporaryDirectory(prefix="jcu-bench-") as tmp:
        async with kafka_for_bench() as kafka:
            bootstrap = kafka.bootstrap
            # soc-fr's node publishes, enisa's receives.
            envs = await federation_homes(kafka, Path(tmp) / "federation", "soc-fr", "enisa")
            ctx = PepContext.load(config.load(envs["soc-fr"]), envs["soc-fr"])
            receiver = PepContext.load(config.load(envs["enisa"]), envs["enisa"])
            print(f"kafka {bootstrap}; {n} messages of a ~1 KiB payload, 5 recipients")
            out = Path(tmp)
            full, size, phases = await _full(ctx, n, out, receipts, kafka.pid, envs["enisa"])
            costs, (publish_leaf, receive_leaf) = _costs(ctx, receiver, n)
            sink = out / "enisa.jsonl"
            sizes = _skeleton_io.Sizes(
                size, publish_leaf, receive_leaf, sink.stat().st_size // count_lines(sink)
            )
            raw, raw_cpu = await _raw(kafka.admin, n, size, kafka.pid)
            receipt_size = _receipt_size(receiver) if receipts else None
            skeleton, skeleton_cpu = await _skeleton(kafka, n, sizes, out, receipt_size)
    full_rate, raw_rate, skeleton_rate = n / full, n / raw, n / skeleton
    print(
        f"on the wire: envelope {size} B (the raw leg's record size), audit leaves "
        f"{publish_leaf} B and {receive_leaf} B, sink line {sizes.sink_line} B"
    )
    if receipt_size is not None:
        base, per_message = receipt_size
        print(
            f"receipts on: one per consumer batch, {base} B + {per_message:.0f} B per message "
            "it covers"
        )
    print(f"raw aiokafka produce+consume : {raw_rate:10,.0f} msg/s  ({raw:6.2f} s)")
    print(
        f"skeleton: the full path's I/O: {skeleton_rate:10,.0f} msg/s  ({skeleton:6.2f} s; "
        "no security work: the ceiling)"
    )
    print(
        f"full path publish->delivery : {full_rate:10,.0f} msg/s  ({full:6.2f} s; "
        f"publishing alone {phases['publish']:.2f} s)"
    )
    print(f"ratio full/raw               : {full_rate / raw_rate:10.3f}   (goal >= 0.50)")
    skeleton_ratio, security_ratio = skeleton_rate / raw_rate, full_rate / skeleton_rate
    print(f"ratio skeleton/raw           : {skeleton_ratio:10.3f}   (goal >= 0.85; the ceiling)")
    print(f"ratio full/skeleton          : {security_ratio:10.3f}   (goal >= 0.60; security work)")
    print("CPU per message (µs): publisher / subscriber / Kafka broker / total")
    for name, cpu in (("raw (one process)", raw_cpu), ("skeleton", skeleton_cpu), ("full", phases)):
        parts = [cpu["publisher cpu"], cpu["subscriber cpu"], cpu["kafka cpu"]]
        cells = " / ".join(f"{secs / n * 1e6:6.0f}" for secs in [*parts, sum(parts)])
        print(f"  {name:<18} {cells}")
    print("where the time goes (CPU-bound steps, measured alone, for all messages):")
    for name, secs in costs.items():
        print(f"  {name:<38} {secs:6.2f} s  ({secs / full:5.1%} of the full path)")
    audit = sum(secs for name, secs in costs.items() if name.startswith("audit"))
    ours, kafka_cpu = phases["publisher cpu"] + phases["subscriber cpu"], phases["kafka cpu"]
    print(
        f"audit log, both sides: {audit:.2f} s = {audit / ours:.1%} of the publisher's and "
        f"subscriber's CPU time"
        + (f", {audit / (ours + kafka_cpu):.1%} with the broker's" if kafka_cpu else "")
        + " (goal < 10%)"
    )
    per_message = {  # µs of CPU per message, by process
        f"{leg}_{who}_cpu_us": cpu[f"{who} cpu"] / n * 1e6
        for leg, cpu in (("raw", raw_cpu), ("skeleton", skeleton_cpu), ("full", phases))
        for who in ("publisher", "subscriber", "kafka")
    }
    ratios = {
        "full_over_raw": full_rate / raw_rate,
        "skeleton_over_raw": skeleton_rate / raw_rate,
        "full_over_skeleton": full_rate / skeleton_rate,
    }
    rates = {"raw_per_s": raw_rate, "skeleton_per_s": skeleton_rate, "full_per_s": full_rate}
    record("pipeline", {**ratios, **rates, **per_message}, messages=n)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--receipts", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.receipts))
