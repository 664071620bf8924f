"""broker.avro_binary writes and reads Avro longs and bytes exactly as fastavro does."""

from __future__ import annotations

import io

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.avro_binary import (
    LONGEST,
    decode_bytes,
    decode_canonical_length,
    decode_long,
    encode_bytes,
    encode_long,
)

_LONG = fastavro.parse_schema("long")
_BYTES = fastavro.parse_schema("bytes")
longs = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)


def _fastavro(schema: object, value: object) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, value)
    return out.getvalue()


@given(longs)
def test_encode_long_is_fastavros_encoding(n: int) -> None:
    assert encode_long(n) == _fastavro(_LONG, n)


@given(st.binary(max_size=300))
def test_encode_bytes_is_fastavros_encoding(value: bytes) -> None:
    assert encode_bytes(value) == _fastavro(_BYTES, value)


@given(st.binary(max_size=300), st.binary(max_size=4))
def test_decode_bytes_reads_what_fastavro_wrote_and_refuses_it_cut(
    value: bytes, after: bytes
) -> None:
    data = _fastavro(_BYTES, value)
    assert decode_bytes(data + after, 0) == (value, len(data))
    if value:
        with pytest.raises(ValueError, match="truncated"):
            decode_bytes(data[:-1], 0)


def test_decode_bytes_refuses_a_negative_length() -> None:
    with pytest.raises(ValueError, match="truncated"):
        decode_bytes(_fastavro(_LONG, -1) + b"x", 0)


@given(longs, st.binary(max_size=4), st.binary(max_size=4))
def test_decode_long_reads_what_fastavro_wrote(n: int, before: bytes, after: bytes) -> None:
    data = before + _fastavro(_LONG, n) + after
    assert decode_long(data, len(before)) == (n, len(data) - len(after))


@given(st.binary(min_size=1, max_size=LONGEST))
def test_decode_long_agrees_with_fastavro_on_any_bytes(data: bytes) -> None:
    """Overlong and odd forms too: where fastavro reads a long, the helper reads the same."""
    try:
        n, end = decode_long(data, 0)
    except ValueError:
        assert all(b & 0x80 for b in data)  # no last byte: truncated
        return
    assert fastavro.schemaless_reader(io.BytesIO(data[:end]), _LONG, None) == n


@given(st.integers(min_value=0, max_value=(1 << 34) - 1), st.binary(max_size=3))
def test_decode_canonical_length_reads_lengths(n: int, after: bytes) -> None:
    data = _fastavro(_LONG, n) + after
    assert decode_canonical_length(data, 0, 5) == (n, len(data) - len(after))


@pytest.mark.parametrize(
    "data",
    [
        b"\x01",  # -1
        b"\x80\x00",  # 0 written in two bytes
        b"\x82\x80\x00",  # 1 written in three bytes
        b"\x81\x01",  # odd: negative
        b"\x80\x80",  # truncated
        encode_long(1 << 40),  # longer than the reader takes
    ],
)
def test_decode_canonical_length_refuses_other_forms(data: bytes) -> None:
    with pytest.raises(ValueError, match="length"):
        decode_canonical_length(data, 0, 5)


def test_decode_long_refuses_more_than_max_bytes() -> None:
    with pytest.raises(ValueError, match="truncated or overlong Avro long"):
        decode_long(encode_long(1 << 40), 0, max_bytes=5)
    assert decode_long(encode_long(1 << 40), 0) == (1 << 40, 6)
