"""A compression bomb on a data topic: the subscriber's memory stays bounded, the batch is
dead-lettered and audited, and the records after it are delivered, also after a restart."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker.envelope import Labels
from broker.kafka.clients import reliable_producer, start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import scan
from broker.kafka.topics import DLQ
from broker.pep import Publisher
from tests.broker.pep.kafka_io import jcu_auditor
from tests.broker.pep.records import indicator
from tests.world import World

pytestmark = pytest.mark.kafka

TOPIC = "jcu.civilian.indicators"
GIB = 1 << 30


def _varint(n: int) -> bytes:
    """Kafka's zigzag varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def zstd_bomb(expanded: int = GIB) -> bytes:
    """A record batch (format v2, zstd) of one record whose value is `expanded` zero bytes,
    compressed as a stream: it is built without ever holding the expanded bytes."""
    import cramjam
    from aiokafka.record.util import calc_crc32c

    key = b"bomb"
    value_len = expanded
    body = (
        b"\x00"  # attributes
        + _varint(0)  # timestamp delta
        + _varint(0)  # offset delta
        + _varint(len(key))
        + key
        + _varint(value_len)
    )
    length = len(body) + value_len + 1  # + headers count
    compressor = cramjam.zstd.Compressor(3)
    compressor.compress(_varint(length) + body)
    chunk = bytes(1 << 20)
    for _ in range(value_len // len(chunk)):
        compressor.compress(chunk)
    compressor.compress(bytes(value_len % len(chunk)) + _varint(0))
    records = bytes(compressor.finish())
    now = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 4, 0, now, now, -1, -1, -1, 1) + records
    crc = calc_crc32c(after_crc)
    after_length = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


async def produce_raw_batch(kafka: KafkaConnection, topic: str, batch: bytes) -> int:
    """Hand Kafka a batch built elsewhere, as a hostile member's client could (aiokafka has no
    public way; its batch object is given the bytes), to partition 0. Returns its offset."""
    producer = reliable_producer(kafka, enable_idempotence=False, acks=1, compression_type=None)
    await start_client(producer, kafka)
    try:
        held = producer.create_batch()
        held._buffer = batch
        held._relative_offset = 1
        held.close()
        meta = await (await producer.send_batch(held, topic, partition=0))
        return int(meta.offset)
    finally:
        await producer.stop()


def _subscribe(world: World, out: Path, group: str, log: Path) -> tuple[int, int]:
    """`jcu subscribe --once` as enisa; its exit code and peak resident memory (KiB)."""
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "broker.cli",
                "subscribe",
                "--as",
                "enisa",
                "--out",
                str(out),
                "--group",
                group,
                "--once",
                "--json",
                "--no-receipts",
            ],
            env=world.env("enisa"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss


async def test_a_compression_bomb_is_refused_with_bounded_memory_and_the_stream_goes_on(
    world: World, tmp_path: Path
) -> None:
    bomb = zstd_bomb(GIB)
    assert len(bomb) < 64 * 1024  # ~32 KB on the wire, 1 GiB expanded
    group = world.group("enisa", "bomb")
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        before = await pub.publish(
            "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
        )
        assert before.copies[0].topic == TOPIC
    # The same reading without a bomb: what a subscriber's memory is on this backlog.
    control = tmp_path / "control"
    code, baseline_kib = await asyncio.to_thread(
        _subscribe, world, control, world.group("enisa", "control"), tmp_path / "control.log"
    )
    assert code == 0 and before.message_id in (control / "enisa.jsonl").read_text()
    # Any organisation may write its community's topics: enisa's neighbour plants the bomb.
    planted = await produce_raw_batch(world.kafka("cert-eu"), TOPIC, bomb)
    try:
        await _refused_and_passed(world, tmp_path, group, before.message_id, baseline_kib)
    finally:
        await _remove_the_bomb(world, planted)


async def _remove_the_bomb(world: World, offset: int) -> None:
    """The session's later tests read this topic from its start with new groups: the platform
    admin deletes the records up to the bomb (everything they need comes after)."""
    from aiokafka.admin.records_to_delete import RecordsToDelete
    from aiokafka.structs import TopicPartition

    from broker.kafka.clients import admin_client

    admin = admin_client(world.admin)
    await start_client(admin, world.admin)
    try:
        await admin.delete_records({TopicPartition(TOPIC, 0): RecordsToDelete(offset + 1)})
    finally:
        await admin.close()


async def _refused_and_passed(
    world: World, tmp_path: Path, group: str, first: str, baseline_kib: int
) -> None:
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        after = [
            (
                await pub.publish(
                    "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
                )
            ).message_id
            for _ in range(3)
        ]

    log = tmp_path / "subscriber.log"
    code, peak_kib = await asyncio.to_thread(_subscribe, world, tmp_path / "out", group, log)
    assert code == 0, log.read_text()
    delivered = (tmp_path / "out" / "enisa.jsonl").read_text()
    for mid in [first, *after]:
        assert mid in delivered, "a record was lost around the bomb"
    # Bounded: the 1 GiB the batch expands to never lived in the subscriber. Its peak is the
    # same reading's without the bomb plus at most two of the 32 MiB limit (the decoder's
    # buffer and a copy); a decoder without the bound needs the whole gibibyte at least.
    extra = (peak_kib - baseline_kib) // 1024
    assert peak_kib < baseline_kib + 64 * 1024, f"peak RSS {peak_kib // 1024} MiB, +{extra} MiB"

    dead = [
        dict(r.headers)
        async for r in scan(world.auditor, [DLQ])
        if dict(r.headers).get("jcu.reason") == b"compression-bomb"
        and dict(r.headers).get("jcu.participant") == b"enisa"
    ]
    assert len(dead) == 1
    source = dead[0]["jcu.source"].decode()
    assert source.startswith(f"{TOPIC}:0:")
    audited = await jcu_auditor(
        world, "audit", "query", "--message", f"unreadable:{source}", "--json"
    )
    assert audited.returncode == 0, audited.stderr
    (row,) = json.loads(audited.stdout)
    assert (row["decision"], row["rejection_reason"]) == ("reject", "compression-bomb")

    # After a restart the group is past the bomb: nothing refused again, nothing lost.
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        later = await pub.publish(
            "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
        )
    code, _ = await asyncio.to_thread(_subscribe, world, tmp_path / "out", group, log)
    assert code == 0, log.read_text()
    assert later.message_id in (tmp_path / "out" / "enisa.jsonl").read_text()
    again = [
        r
        async for r in scan(world.auditor, [DLQ])
        if dict(r.headers).get("jcu.reason") == b"compression-bomb"
        and dict(r.headers).get("jcu.participant") == b"enisa"
    ]
    assert len(again) == 1
