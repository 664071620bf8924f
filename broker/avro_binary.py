"""Avro's binary encoding of a long (zig-zag, then 7 bits a byte, least significant
first) and of a bytes value, for the paths that splice or read single fields by hand.

fastavro encodes and decodes whole records; the audit encoder, the envelope's
template splicer and its strict reader write or read single fields inside bytes
fastavro made and must agree with it bit for bit. One implementation, here,
property-tested against fastavro (tests/broker/test_avro_binary.py).
"""

from __future__ import annotations

from typing import Final

#: An Avro long takes at most 10 bytes (64 bits, 7 a byte).
LONGEST: Final = 10
_BYTE: Final = tuple(bytes((i,)) for i in range(128))


def encode_long(n: int) -> bytes:
    """The Avro binary encoding of the long `n`."""
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return _BYTE[z]
    if z < 0x4000:  # two bytes: lengths and indices up to 8191
        return bytes((z & 0x7F | 0x80, z >> 7))
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def encode_bytes(value: bytes) -> bytes:
    """The Avro binary encoding of a `bytes` (or string) value: its length, then it."""
    return encode_long(len(value)) + value


def decode_long(data: bytes, pos: int, *, max_bytes: int = LONGEST) -> tuple[int, int]:
    """The Avro long at `pos` as fastavro reads it (overlong forms too), and where it ends.

    ValueError if the bytes end first or it takes more than `max_bytes`.
    """
    n = shift = 0
    for i in range(pos, min(pos + max_bytes, len(data))):
        b = data[i]
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), i + 1
        shift += 7
    raise ValueError("truncated or overlong Avro long")


def decode_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    """The Avro `bytes` (or string) value at `pos`, and where it ends.

    ValueError if its length is negative or runs past the end of `data`.
    """
    n, pos = decode_long(data, pos)
    if n < 0 or pos + n > len(data):
        raise ValueError("truncated Avro bytes")
    return data[pos : pos + n], pos + n


def decode_canonical_length(data: bytes, pos: int, max_bytes: int) -> tuple[int, int]:
    """The non-negative Avro long at `pos`, in the one form `encode_long` writes, and where
    it ends: what a strict reader takes. Tuned for the one- and two-byte lengths of
    signatures and most ciphertexts.

    ValueError for a negative, overlong (a trailing zero byte), truncated or longer than
    `max_bytes` number (IndexError if `pos` is at the end).
    """
    b = data[pos]
    if b < 0x80:
        if b & 1:  # odd: negative
            raise ValueError("negative length")
        return b >> 1, pos + 1
    c = data[pos + 1]
    if c < 0x80:
        if c == 0 or b & 1:
            raise ValueError("overlong or negative length")
        return ((b & 0x7F) | c << 7) >> 1, pos + 2
    n = (b & 0x7F) | (c & 0x7F) << 7
    shift = 14
    for i in range(pos + 2, min(pos + max_bytes, len(data))):
        b = data[i]
        n |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0 or n & 1:
                raise ValueError("overlong or negative length")
            return n >> 1, i + 1
        shift += 7
    raise ValueError("truncated length, or longer than this reader takes")
