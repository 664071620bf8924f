"""The full path's Kafka I/O with none of its security work: what Python and aiokafka cost.

The full path must, per message, produce the publisher's audit leaf, the
envelope and then the leaf of its send outcome, and on the receiving side
consume the envelope, write a line to the sink,
produce the receiving audit leaf and commit the offset; with receipts on, it
also produces, per consumer batch, one receipt record per sender (here one
sender), its size growing with the ids it covers. Audit leaves go as the log
writes them: the leaves of one publish chunk (or consumer batch) in one record,
a leaf pack (`broker.audit.pack`), not one record per leaf. This leg does exactly
that I/O, with records of the same sizes and the same client settings, but no
policy, Avro, crypto, Merkle tree or delivery ledger. Its rate is a ceiling for
the full path on this machine: the security work can only add to it.

The publisher side runs in the bench process; the receiving side runs as
`python -m bench._skeleton` in another process, as `jcu subscribe` does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker import config
from broker.audit.pack import MAX_PACK_BYTES
from broker.kafka.clients import reliable_producer
from broker.kafka.connection import KafkaConnection

#: The publisher's and the subscriber's batch sizes in the full path.
CHUNK = 200
MAX_RECORDS = 500


@dataclass(frozen=True, slots=True)
class Sizes:
    envelope: int
    publish_leaf: int
    receive_leaf: int
    sink_line: int

    def argv(self) -> list[str]:
        sizes = (self.envelope, self.publish_leaf, self.receive_leaf, self.sink_line)
        return [str(size) for size in sizes]


@dataclass(frozen=True, slots=True)
class ReceiptSize:
    """A sealed batch receipt's size: `base` bytes plus `per_message` per id it covers."""

    topic: str
    base: int
    per_message: float

    def of(self, count: int) -> int:
        return self.base + round(self.per_message * count)

    def argv(self) -> list[str]:
        return ["--receipts", self.topic, str(self.base), str(self.per_message)]


def _leaf_packs(producer: Any, leaf: bytes, count: int) -> Any:
    """`count` leaves as one append writes them: a record per leaf pack of at most
    MAX_PACK_BYTES (one, at the full path's batch sizes)."""
    per = max(1, MAX_PACK_BYTES // (len(leaf) + 10))
    batch = producer.create_batch()
    for start in range(0, count, per):
        batch.append(key=None, value=leaf * min(per, count - start), timestamp=None)
    batch.close()
    return batch


async def publish(producer: Any, topic: str, audit_topic: str, n: int, sizes: Sizes) -> None:
    """Per chunk: one batch of publish leaves, one envelope-sized record per message, then one
    batch of send-outcome leaves (what the publisher records once Kafka holds the envelopes;
    about the size of a receive leaf)."""
    envelope, leaf = os.urandom(sizes.envelope), os.urandom(sizes.publish_leaf)
    outcome = os.urandom(sizes.receive_leaf)
    for start in range(0, n, CHUNK):
        count = min(CHUNK, n - start)
        await (
            await producer.send_batch(_leaf_packs(producer, leaf, count), audit_topic, partition=0)
        )
        futures = [
            await producer.send(topic, envelope, key=uuid.uuid4().bytes) for _ in range(count)
        ]
        await asyncio.gather(*futures)
        await (
            await producer.send_batch(
                _leaf_packs(producer, outcome, count), audit_topic, partition=0
            )
        )


async def receive(
    kafka: KafkaConnection,
    topic: str,
    audit_topic: str,
    out: Path,
    sizes: Sizes,
    receipts: ReceiptSize | None = None,
) -> None:
    """Until SIGTERM: per batch, a sink line per record and a leaf pack of a receive leaf
    per record, flush, (with `receipts`) one receipt record for the batch, commit."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        **kafka.client_options(),
        group_id=f"bench-skeleton-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_bytes=16 * 1024 * 1024,
    )
    producer = reliable_producer(kafka)
    await consumer.start()
    await producer.start()
    line = b"x" * (sizes.sink_line - 1) + b"\n"
    leaf = os.urandom(sizes.receive_leaf)
    try:
        with out.open("ab") as sink:
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)
                count = sum(len(records) for records in batch.values())
                if not count:
                    continue
                sent = await producer.send_batch(
                    _leaf_packs(producer, leaf, count), audit_topic, partition=0
                )
                sink.write(line * count)
                sink.flush()
                if receipts is not None:  # after the flush, as the full path does
                    receipt = os.urandom(receipts.of(count))
                    await (await producer.send(receipts.topic, receipt, key=b"receiver"))
                await sent
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topic")
    parser.add_argument("audit_topic")
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "sizes", type=int, nargs=4, help="envelope, publish leaf, receive leaf, sink line"
    )
    parser.add_argument(
        "--receipts",
        nargs=3,
        metavar=("TOPIC", "BASE", "PER_MESSAGE"),
        help="one receipt record per batch on TOPIC, of BASE + PER_MESSAGE bytes per record",
    )
    args = parser.parse_args()
    sizes = Sizes(*args.sizes)
    receipts = (
        ReceiptSize(args.receipts[0], int(args.receipts[1]), float(args.receipts[2]))
        if args.receipts
        else None
    )
    # Who it is on the cluster comes from the environment (JCU_KAFKA_CONFIG), never argv.
    kafka = config.load().kafka
    asyncio.run(receive(kafka, args.topic, args.audit_topic, args.out, sizes, receipts))


if __name__ == "__main__":
    main()
