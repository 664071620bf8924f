"""Bounded decompression of fetched record batches: a compression bomb costs a bounded amount.

Kafka stores a producer's compressed batch as it is; a ~32 KB zstd batch can
expand to a gibibyte, and aiokafka decompresses a whole batch at once, with no
limit. `limit_decompression(n)` replaces the decoders aiokafka's record parser
calls (its Python and its compiled implementation alike) with ones that stop
at `n` bytes and raise `CompressionBomb` instead: memory stays within `n` plus
the legitimate batches' own size. The subscriber catches it, dead-letters the
batch and moves on (broker.pep.subscriber).

This changes aiokafka's decoders for the whole process (they are module-level
functions there). It is done explicitly, never at import: by every consumer
`broker.kafka.clients.consumer` makes (the default limit, unless one is set)
and by the subscriber's `start()` (its configured limit).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from broker.errors import CompressionBomb

#: The default bound on one batch's decompressed size: far above any batch our producers
#: make (512 KiB, `clients.reliable_producer`), far below what would hurt a node.
DEFAULT_LIMIT = 32 * 1024 * 1024
#: Codec functions of aiokafka's record parsers that decode a batch's payload.
_DECODERS = ("gzip_decode", "snappy_decode", "lz4_decode", "zstd_decode")


class _Bounded:
    """Decoders that give up at `limit` bytes, sharing one output buffer (the event loop
    decodes one batch at a time)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()

    def _into(self, decompress_into: Any, payload: Any, codec: str) -> bytes:
        """Decompress into a buffer grown by doubling, up to limit + 1 byte: a payload that
        fills the whole buffer is larger than the limit."""
        import cramjam

        size = min(self.limit + 1, max(1 << 20, 8 * len(payload)))
        while True:
            if len(self._buffer) < size:
                self._buffer = bytearray(size)
            view = memoryview(self._buffer)[:size]
            try:
                written = int(decompress_into(bytes(payload), view))
            except cramjam.DecompressionError as exc:
                if "whole buffer" not in str(exc) and "too small" not in str(exc):
                    raise
                written = size  # ran out of room
            if written <= self.limit and written < size:
                return bytes(view[:written])
            if size > self.limit:
                raise CompressionBomb(
                    f"a {codec} record batch of {len(payload)} bytes expands past the "
                    f"{self.limit}-byte limit"
                )
            size = min(self.limit + 1, size * 2)

    def zstd(self, payload: Any) -> bytes:
        import cramjam

        return self._into(cramjam.zstd.decompress_into, payload, "zstd")

    def lz4(self, payload: Any) -> bytes:
        import cramjam

        return self._into(cramjam.lz4.decompress_into, payload, "lz4")

    def gzip(self, payload: Any) -> bytes:
        d = zlib.decompressobj(wbits=47)  # gzip or zlib header
        out = d.decompress(bytes(payload), self.limit + 1)
        if len(out) > self.limit or d.unconsumed_tail:
            raise CompressionBomb(
                f"a gzip record batch of {len(payload)} bytes expands past the "
                f"{self.limit}-byte limit"
            )
        return out

    def snappy(self, payload: Any) -> bytes:
        import cramjam
        from aiokafka import codec

        data = bytes(payload)
        total = 0
        if codec._detect_xerial_stream(data):
            # xerial framing: a 16-byte header, then [int32 length][raw snappy block]...
            pos = 16
            while pos + 4 <= len(data):
                (n,) = struct.unpack_from("!i", data, pos)
                total += int(cramjam.snappy.decompress_raw_len(data[pos + 4 : pos + 4 + n]))
                pos += 4 + n
        else:
            total = int(cramjam.snappy.decompress_raw_len(data))
        if total > self.limit:
            raise CompressionBomb(
                f"a snappy record batch of {len(data)} bytes expands past the "
                f"{self.limit}-byte limit"
            )
        return bytes(codec.snappy_decode(data))


_installed: _Bounded | None = None


def limit_decompression(limit: int | None = None) -> int:
    """Bound what one fetched batch may decompress to, in this process: `limit` bytes, or,
    if None, the limit already set (the default if none is). Returns the bound in force."""
    global _installed
    if limit is not None and limit < 1:
        raise ValueError("the decompression limit is a positive number of bytes")
    if _installed is not None:
        if limit is not None:
            _installed.limit = limit
        return _installed.limit
    import importlib

    limit = limit or DEFAULT_LIMIT
    bounded = _Bounded(limit)
    decoders = {
        "gzip_decode": bounded.gzip,
        "snappy_decode": bounded.snappy,
        "lz4_decode": bounded.lz4,
        "zstd_decode": bounded.zstd,
    }
    for name in (
        "aiokafka.record.default_records",
        "aiokafka.record._crecords.default_records",
        "aiokafka.record.legacy_records",
        "aiokafka.record._crecords.legacy_records",
    ):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue  # aiokafka without its compiled parsers
        for attr in _DECODERS:
            if hasattr(module, attr):
                setattr(module, attr, decoders[attr])
    _installed = bounded
    return limit
