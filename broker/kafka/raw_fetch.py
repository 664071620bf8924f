"""Reading one partition's record batches by hand, for the subscriber's recovery from a bomb.

When aiokafka's fetcher meets a batch it may not decompress (`CompressionBomb`,
from broker.kafka.decompression), the exception leaves the consumer without a
way past it: every fetch returns the same batch. So the subscriber reads that
stretch itself: one Fetch request at a time to the partition's leader, parsed
with aiokafka's own record classes (which honour aborted transactions), and the
bomb's extent from its batch header (Kafka's record batch format v2: base
offset at byte 0, batch length at 8, last offset delta at 23). aiokafka has no
public API for either; the calls used are its client's `send` and the classes
its fetcher uses.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Bytes asked for per fetch: one request's worth of batches at a time.
FETCH_BYTES = 1 << 20
READ_COMMITTED = 1


@dataclass(frozen=True, slots=True)
class RawFetch:
    tp: Any
    offset: int
    records: bytes
    aborted: list[Any] | None
    highwater: int


async def fetch_raw(consumer: Any, tp: Any, offset: int) -> RawFetch:
    """One Fetch of `tp` from `offset` (read_committed), from the partition's leader."""
    from aiokafka.errors import NotLeaderForPartitionError, for_code
    from aiokafka.protocol.fetch import FetchRequest

    client = consumer._client
    leader = client.cluster.leader_for_partition(tp)
    if leader is None or leader < 0:
        await client.force_metadata_update()
        leader = client.cluster.leader_for_partition(tp)
        if leader is None or leader < 0:
            raise NotLeaderForPartitionError(f"no leader for {tp}")
    request = FetchRequest(
        0,  # max wait: what is there now
        1,
        FETCH_BYTES,
        READ_COMMITTED,
        [(tp.topic, [(tp.partition, offset, FETCH_BYTES)])],
    )
    response = await client.send(leader, request)
    for _topic, partitions in response.topics:
        for partition, error_code, highwater, *data in partitions:
            if partition != tp.partition:
                continue
            if error_code:
                raise for_code(error_code)(f"fetching {tp} at {offset}")
            aborted = data[2] if response.API_VERSION >= 11 else data[-2]
            return RawFetch(tp, offset, bytes(data[-1] or b""), aborted, int(highwater))
    return RawFetch(tp, offset, b"", None, offset)


def records(fetch: RawFetch) -> Any:
    """The fetch's records as aiokafka's consumer would yield them (aborted transactions
    and control batches left out). Iterating past a bomb raises CompressionBomb; the
    iterator's `next_fetch_offset` is then the bomb's base offset."""
    from aiokafka.consumer.fetcher import PartitionRecords
    from aiokafka.record.memory_records import MemoryRecords

    return PartitionRecords(
        fetch.tp,
        MemoryRecords(fetch.records),
        fetch.aborted,
        fetch.offset,
        None,
        None,
        True,
        READ_COMMITTED,
    )


def batches(raw: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(base offset, last offset, the batch's bytes) of each whole batch in `raw`."""
    pos = 0
    while pos + 27 <= len(raw):
        base, length = struct.unpack_from(">qi", raw, pos)
        end = pos + 12 + length
        if length <= 0 or end > len(raw):
            return  # a partial batch at the end of a fetch
        (last_delta,) = struct.unpack_from(">i", raw, pos + 23)
        yield base, base + last_delta, raw[pos:end]
        pos = end


def batch_at(raw: bytes, offset: int) -> tuple[int, int, bytes] | None:
    """The batch of `raw` that holds `offset` (or the first one after it)."""
    for base, last, data in batches(raw):
        if last >= offset:
            return base, last, data
    return None
