"""Leaf packs: many audit leaves in one record of `jcu.audit.decisions`.

A log writes the leaves of one append (one publish batch, one consumer batch)
as one Kafka record, an `eu.jcu.v1.AuditLeafPack` (schemas/AuditLeafPack.avsc),
so the broker pays one record per batch, not one per message. Each leaf inside
stays the very bytes a single-leaf record held: the Merkle tree, checkpoints
and proofs are over leaves and never see a pack. A pack is told from a
single-leaf record by its single-object header (the schema's fingerprint), so
a topic written before packs (single leaves, then packs) reads as one log.

Encoded and decoded by hand (the encoding is Avro's; the property tests hold it
to fastavro's): the verifier reads every pack of the log.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from broker.audit._codec import read_bytes, read_long
from broker.avro_binary import encode_long
from broker.errors import AuditError, MalformedRecord, UnknownSchema
from broker.schemas import SINGLE_OBJECT_MAGIC, SchemaStore

AUDIT_PACK = "eu.jcu.v1.AuditLeafPack"

#: A pack's size bound: well under the broker's default max.message.bytes (1 MiB; the
#: audit topics do not raise it, broker.kafka.topics) and the producer's max request
#: (4 MiB, broker.kafka.clients). A leaf is at most a few KiB (64 decisions).
MAX_PACK_BYTES = 256 * 1024
_WHAT = "audit leaf pack"


@dataclass(frozen=True, slots=True)
class LeafPack:
    """One pack as read: whose leaves, the index of the first, the leaves' bytes."""

    enforcement_point: str
    first_index: int
    leaves: tuple[bytes, ...]


class PackCodec:
    """Writes and reads packs under one schema store's `AuditLeafPack`."""

    def __init__(self, store: SchemaStore) -> None:
        try:
            self.header = SINGLE_OBJECT_MAGIC + store.fingerprint(AUDIT_PACK)
        except UnknownSchema:
            raise AuditError(f"the schema store has no {AUDIT_PACK}; check JCU_SCHEMAS") from None

    def is_pack(self, data: bytes) -> bool:
        return data.startswith(self.header)

    def encode(self, enforcement_point: str, first_index: int, leaves: Sequence[bytes]) -> bytes:
        """`leaves` (consecutive, from `first_index`) as one pack."""
        if not leaves:
            raise AuditError("an audit leaf pack holds at least one leaf")
        if first_index < 0:
            raise AuditError(f"an audit leaf pack cannot start at index {first_index}")
        point = enforcement_point.encode("utf-8")
        parts = [
            self.header,
            encode_long(len(point)),
            point,
            encode_long(first_index),
            encode_long(len(leaves)),
        ]
        for leaf in leaves:
            parts.append(encode_long(len(leaf)))
            parts.append(leaf)
        parts.append(b"\x00")
        return b"".join(parts)

    def decode(self, data: bytes) -> LeafPack:
        """A pack's leaves (MalformedRecord, saying why, if it is not a whole pack)."""
        if not self.is_pack(data):
            raise MalformedRecord("not an audit leaf pack (another schema's header)")
        pos = len(self.header)
        raw_point, pos = read_bytes(data, pos, _WHAT)
        first, pos = read_long(data, pos, _WHAT)
        if first < 0:
            raise MalformedRecord(f"audit leaf pack claims a negative first index {first}")
        leaves: list[bytes] = []
        while True:  # Avro array: blocks of items, a negative count followed by a byte size
            count, pos = read_long(data, pos, _WHAT)
            if count == 0:
                break
            if count < 0:
                count = -count
                _, pos = read_long(data, pos, _WHAT)
            for _ in range(count):
                leaf, pos = read_bytes(data, pos, _WHAT)
                leaves.append(leaf)
        if pos != len(data):
            raise MalformedRecord("audit leaf pack has bytes after its leaves")
        if not leaves:
            raise MalformedRecord("audit leaf pack holds no leaf")
        try:
            point = raw_point.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedRecord("audit leaf pack enforcement point is not UTF-8") from None
        return LeafPack(point, first, tuple(leaves))


def pack_bounds(sizes: Sequence[int], limit: int = MAX_PACK_BYTES) -> Iterator[tuple[int, int]]:
    """Split leaves of these byte sizes into consecutive packs of at most about `limit`
    bytes each: (start, end) ranges. A leaf above the limit goes alone."""
    overhead = 256  # header, enforcement point, first index, block counts
    start, used = 0, overhead
    for i, size in enumerate(sizes):
        cost = size + 10  # its length prefix, at most
        if i > start and used + cost > limit:
            yield start, i
            start, used = i, overhead
        used += cost
    if start < len(sizes):
        yield start, len(sizes)
