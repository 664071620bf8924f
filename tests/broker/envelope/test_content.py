"""SealedContent, the plaintext of a format-2 envelope: the codec's bytes are fastavro's.

The sealer concatenates cached label encodings instead of encoding each message,
and the opener splits at the payload's length: both must agree with a full Avro
encode and decode of `eu.jcu.v1.SealedContent` for every input, and fail where
that decode fails.
"""

from __future__ import annotations

import io

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.avro_binary import encode_long
from broker.envelope import Labels
from broker.envelope._content import ContentCodec
from broker.errors import MalformedRecord, UnknownSchema
from broker.schemas import SchemaStore
from tests.broker._pki import load_store

LABELS = Labels.of(
    "AMBER+STRICT",
    handling_codes=["H2", "H3"],
    categories=["fraud", "malicious-code"],
    personal_data=True,
    exercise="cyber-europe-2026",
    incident="INC-2026-0042",
    member_states=["EE", "LV"],
    redacted_fields=["reporter"],
)
labels_strategy = st.builds(
    Labels.of,
    st.sampled_from(["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]),
    handling_codes=st.lists(st.sampled_from(["H0", "H1", "H2", "H3"])),
    categories=st.lists(st.sampled_from(["fraud", "intrusions", "test"])),
    personal_data=st.booleans(),
    exercise=st.none() | st.text(max_size=10),
    incident=st.none() | st.text(max_size=2000),  # some tails too long to be cached
    member_states=st.lists(st.sampled_from(["FR", "DE", "EE"])),
    redacted_fields=st.lists(st.text(max_size=8), max_size=3),
)
# Lengths around every varint width the fast path parses.
payloads = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([63, 64, 8191, 8192, 70_000]).map(lambda n: b"\xc3\x01" + bytes(n - 2)),
)


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return load_store()


def _full(store: SchemaStore, labels: Labels, payload: bytes) -> bytes:
    return store.encode("SealedContent", {"payload": payload, "labels": labels.to_avro()})


@settings(max_examples=150, deadline=None)
@given(labels=labels_strategy, payload=payloads)
def test_wrap_is_the_avro_encoding_and_unwrap_its_decoding(
    store: SchemaStore, labels: Labels, payload: bytes
) -> None:
    codec = ContentCodec(store)
    for _ in range(2):  # the second time from the caches
        data = codec.wrap(labels, payload)
        assert data == _full(store, labels, payload)
        assert codec.unwrap(data) == (labels, payload)
        _, rec = store.decode(data, expected="SealedContent")
        assert (Labels.from_avro(rec["labels"]), rec["payload"]) == (labels, payload)


def test_cached_labels_do_not_stick_to_other_payloads(store: SchemaStore) -> None:
    codec = ContentCodec(store)
    other = Labels.of("GREEN")
    for i in range(3):
        for labels in (LABELS, other):
            payload = bytes([i]) * (i * 100)
            assert codec.unwrap(codec.wrap(labels, payload)) == (labels, payload)


def test_caches_stay_bounded(store: SchemaStore) -> None:
    codec = ContentCodec(store, cache_size=4)
    for i in range(10):
        labels = Labels.of("RED", incident=f"INC-{i}")
        assert codec.unwrap(codec.wrap(labels, b"p")) == (labels, b"p")
    assert len(codec._encoded) <= 4 and len(codec._decoded) <= 4


def test_another_writer_version_of_sealed_content_is_decoded_in_full() -> None:
    """A sender with a newer SealedContent (an added field with a default): the store
    resolves it, the fast path steps aside."""
    store = load_store()
    newer = store.schema("SealedContent")
    newer["fields"].append({"name": "note", "type": "string", "default": ""})
    fingerprint = store.add_writer_schema(newer)
    codec = ContentCodec(store)
    buf = io.BytesIO()
    fastavro.schemaless_writer(
        buf,
        fastavro.parse_schema(newer),
        {"payload": b"payload", "labels": LABELS.to_avro(), "note": "hello"},
    )
    data = b"\xc3\x01" + fingerprint + buf.getvalue()
    assert codec.unwrap(data) == (LABELS, b"payload")


def test_what_is_not_a_sealed_content_is_refused_as_the_full_decode_refuses_it(
    store: SchemaStore,
) -> None:
    codec = ContentCodec(store)
    good = codec.wrap(LABELS, b"payload")
    codec.unwrap(good)  # its labels are now cached
    head = good[:10]
    tail = good[10 + 1 + len(b"payload") :]
    cases: list[tuple[bytes, type[Exception]]] = [
        (good + b"\x00", MalformedRecord),  # trailing bytes after the labels
        (good[:-1], MalformedRecord),  # labels cut short
        (head + encode_long(10_000) + b"payload" + tail, MalformedRecord),  # past the end
        # a negative length: fastavro reads the rest as the payload and finds no labels
        (head + b"\x01" + tail, MalformedRecord),
        (
            store.encode(
                "Indicator",
                {
                    "id": "5e6f3b1a-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
                    "observable_type": "ipv4-addr",
                    "value": "192.0.2.1",
                    "valid_from": 0,
                },
            ),
            UnknownSchema,
        ),
        (b"\xc3\x01" + bytes(8) + good[10:], UnknownSchema),
        (b"not avro", MalformedRecord),
    ]
    for data, error in cases:
        with pytest.raises(error):
            store.decode(data, expected="SealedContent")
        with pytest.raises(error):
            codec.unwrap(data)


def test_labels_outside_the_vocabulary_are_malformed(store: SchemaStore) -> None:
    bad = {**LABELS.to_avro(), "categories": ["not-a-category"]}
    data = store.encode("SealedContent", {"payload": b"p", "labels": bad})
    codec = ContentCodec(store)
    for _ in range(2):
        with pytest.raises(MalformedRecord, match="not-a-category"):
            codec.unwrap(data)
