"""Leaf packs: the format (held to fastavro's encoding), and tampering inside a pack.

Logs are built as `AuditLog` writes them (test_verify's helpers), then packed
as it packs them, then tampered with inside a pack. The writer over real Kafka
is tested in test_log_kafka.py.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit import Verifier, verify
from broker.audit.pack import AUDIT_PACK, MAX_PACK_BYTES, LeafPack, PackCodec, pack_bounds
from broker.audit.query import decode_records, iter_records
from broker.audit.topic import TopicRecord, unpack
from broker.errors import AuditError, MalformedRecord
from broker.merkle import leaf_hash
from broker.schemas import SchemaStore
from tests.broker.audit.test_verify import (
    EP,
    KEYS,
    as_topic,
    build_records,
    decision,
    leaf,
    sign_checkpoints,
)

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return SchemaStore.load(SCHEMAS)


@pytest.fixture(scope="module")
def codec(store: SchemaStore) -> PackCodec:
    return PackCodec(store)


@pytest.fixture(scope="module")
def key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def values(store: SchemaStore) -> list[bytes]:
    return build_records(store, [decision(i) for i in range(30)])


@pytest.fixture(scope="module")
def checkpoints(store, key, values) -> list[bytes]:
    return sign_checkpoints(store, key, values, [10, 20, 30])


# -- the format ----------------------------------------------------------------------------

_points = st.text(min_size=1, max_size=40)
_leaves = st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=12)
_firsts = st.integers(min_value=0, max_value=2**62)


@settings(max_examples=200, deadline=None)
@given(point=_points, first=_firsts, leaves=_leaves)
def test_a_pack_round_trips_and_is_what_fastavro_writes(store, codec, point, first, leaves):
    data = codec.encode(point, first, leaves)
    assert data == store.encode(
        AUDIT_PACK, {"enforcement_point": point, "first_index": first, "leaves": leaves}
    )
    assert codec.decode(data) == LeafPack(point, first, tuple(leaves))
    name, decoded = store.decode(data, expected=AUDIT_PACK)
    assert (name, decoded["first_index"], decoded["leaves"]) == (AUDIT_PACK, first, leaves)


@settings(max_examples=300, deadline=None)
@given(
    point=_points,
    first=_firsts,
    leaves=_leaves,
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_byte_changed_in_a_pack_is_rejected_or_reads_otherwise(
    codec, point, first, leaves, where, flip
):
    data = bytearray(codec.encode(point, first, leaves))
    data[int(where * len(data))] ^= flip
    try:
        pack: LeafPack | str = codec.decode(bytes(data))
    except MalformedRecord as exc:
        pack = str(exc)  # rejected, saying why
    assert pack and pack != LeafPack(point, first, tuple(leaves))


def test_every_cut_of_a_pack_is_rejected(codec, values) -> None:
    data = codec.encode(EP, 0, values[:3])
    for end in range(len(data)):
        with pytest.raises(MalformedRecord):
            codec.decode(data[:end])


def test_what_a_pack_must_be_is_checked_with_a_reason(store, codec) -> None:
    good = codec.encode(EP, 4, [b"leaf"])
    with pytest.raises(MalformedRecord, match="bytes after"):
        codec.decode(good + b"\x00")
    empty = store.encode(AUDIT_PACK, {"enforcement_point": EP, "first_index": 0, "leaves": []})
    with pytest.raises(MalformedRecord, match="no leaf"):
        codec.decode(empty)
    negative = store.encode(AUDIT_PACK, {"enforcement_point": EP, "first_index": -1, "leaves": []})
    with pytest.raises(MalformedRecord, match="negative"):
        codec.decode(negative)
    bad_name = codec.header + b"\x02\xff" + good[len(codec.header) + 1 + len(EP) :]
    with pytest.raises(MalformedRecord, match="UTF-8"):
        codec.decode(bad_name)
    with pytest.raises(AuditError):
        codec.encode(EP, 0, [])


def test_a_pack_in_blocks_of_another_writer_reads_the_same(codec) -> None:
    """Avro lets a writer split an array in blocks, with a byte size (negative count)."""
    one = codec.encode(EP, 7, [b"ab", b"cde"])
    head = one[: len(codec.header) + 1 + len(EP) + 1]  # header, name, first index
    # a block of -1 item of 3 bytes, a block of 1 item, the end
    blocks = b"\x01\x06\x04ab" + b"\x02\x06cde" + b"\x00"
    assert codec.decode(head + blocks) == codec.decode(one)


def test_packs_are_bounded_in_size(codec) -> None:
    sizes = [700] * 2000
    bounds = list(pack_bounds(sizes))
    assert len(bounds) > 1 and bounds[0][0] == 0 and bounds[-1][1] == len(sizes)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    for start, end in bounds:
        assert len(codec.encode(EP, start, [bytes(700)] * (end - start))) <= MAX_PACK_BYTES
    assert list(pack_bounds([MAX_PACK_BYTES * 2, 10])) == [(0, 1), (1, 2)]  # alone, not lost
    assert list(pack_bounds([100] * 5)) == [(0, 5)]


# -- reading packs ------------------------------------------------------------------------


def packed(codec: PackCodec, values: list[bytes], cuts: list[int], key: str = EP):
    """The leaves `values` written as packs ending at `cuts`, a record each."""
    out: list[TopicRecord] = []
    start = 0
    for offset, end in enumerate([*cuts, len(values)]):
        if end > start:
            data = codec.encode(EP, start, values[start:end])
            out.append(TopicRecord(key, data, 0, offset))
        start = end
    return out


def leaves_of(codec: PackCodec, records: list[TopicRecord]) -> list[TopicRecord]:
    return [leaf for r in records for leaf in unpack(codec, r)]


def run(store, key, codec, records, checkpoints, **options):
    return verify(
        store,
        leaves_of(codec, records),
        as_topic(checkpoints),
        lambda ep: [key.public_key()],
        audit_keys=KEYS,
        **options,
    )


def failure_of(report):
    (ep,) = report.reports
    assert ep.failure is not None, "tampering went unnoticed"
    return ep.failure


def test_a_packed_log_reads_as_its_leaves_and_verifies(store, key, codec, values, checkpoints):
    records = packed(codec, values, [7, 19])
    leaves = leaves_of(codec, records)
    assert [r.value for r in leaves] == values
    assert [r.claimed_index for r in leaves] == list(range(30))
    assert [r.offset for r in leaves] == [0] * 7 + [1] * 12 + [2] * 11
    report = run(store, key, codec, records, checkpoints)
    assert report.ok and (report.reports[0].records, report.reports[0].sealed) == (30, 30)


def test_a_log_of_single_leaves_then_packs_reads_as_one(store, key, codec, values, checkpoints):
    """Logs written before packs: single-leaf records, then packs, on one topic."""
    records = [*as_topic(values[:12]), TopicRecord(EP, codec.encode(EP, 12, values[12:]), 0, 12)]
    report = run(store, key, codec, records, checkpoints)
    assert report.ok and report.reports[0].records == 30
    found, bad = decode_records(store, leaves_of(codec, records), KEYS)
    assert bad == 0 and len(found) == 30


def test_a_leaf_changed_inside_a_pack_is_named(store, key, codec, values, checkpoints):
    changed = list(values)
    changed[12] = leaf(store, 12, leaf_hash(values[11]), decision(99))
    failure = failure_of(run(store, key, codec, packed(codec, changed, [10, 20]), checkpoints))
    assert (failure.kind, failure.record_index, failure.offset) == ("modified", 12, 1)


def test_a_leaf_dropped_from_a_pack_is_named(store, key, codec, values, checkpoints):
    dropped = codec.encode(EP, 10, values[10:12] + values[13:20])
    records = [
        *packed(codec, values[:10], []),
        TopicRecord(EP, dropped, 0, 1),
        TopicRecord(EP, codec.encode(EP, 20, values[20:]), 0, 2),
    ]
    failure = failure_of(run(store, key, codec, records, checkpoints))
    assert (failure.kind, failure.record_index) == ("missing", 12)


def test_leaves_reordered_inside_a_pack_are_named(store, key, codec, values, checkpoints):
    swapped = [*values[:14], values[15], values[14], *values[16:]]
    failure = failure_of(run(store, key, codec, packed(codec, swapped, [10, 20]), checkpoints))
    assert (failure.kind, failure.record_index) == ("reordered", 14)


def test_a_truncated_pack_is_named_by_offset(store, key, codec, values, checkpoints):
    records = packed(codec, values, [10, 20])
    cut = records[1]
    records[1] = TopicRecord(EP, cut.value[:-40], 0, cut.offset)
    failure = failure_of(run(store, key, codec, records, checkpoints))
    assert (failure.kind, failure.offset) == ("malformed", 1)
    assert "truncated" in failure.message


def test_a_pack_claiming_the_wrong_first_index_is_named(store, key, codec, values, checkpoints):
    """The leaves are intact and in order: only the pack lies about where they start."""
    records = packed(codec, values, [10, 20])
    records[1] = TopicRecord(EP, codec.encode(EP, 11, values[10:20]), 0, 1)
    failure = failure_of(run(store, key, codec, records, checkpoints))
    assert (failure.kind, failure.record_index, failure.offset) == ("malformed", 10, 1)
    assert "first index" in failure.message


def test_a_pack_keyed_to_another_enforcement_point_is_not_read_as_its_leaves(codec, values):
    pack = TopicRecord("enisa/receive", codec.encode(EP, 0, values[:3]), 0, 5)
    (damaged,) = unpack(codec, pack)
    assert damaged.value == pack.value and damaged.problem is not None
    assert "keyed 'enisa/receive'" in damaged.problem
    single = TopicRecord(EP, values[0], 0, 0)
    assert unpack(codec, single) == [single]


def test_a_damaged_pack_fails_the_log_it_is_keyed_to(store, key, codec, values, checkpoints):
    records = packed(codec, values, [10, 20])
    records.insert(1, TopicRecord(EP, codec.header + b"\x01", 0, 1))
    failure = failure_of(run(store, key, codec, records, checkpoints))
    assert failure.kind == "malformed" and failure.offset == 1


def test_leaves_re_sent_in_other_packs_after_a_crash_are_read_once(
    store, key, codec, values, checkpoints
):
    """Kafka kept packs 0..9 and 10..14 before the crash; the restart re-sends 10..19 (its
    journal past the last checkpoint, 10) as one pack, then writes on."""
    records = [
        TopicRecord(EP, codec.encode(EP, 0, values[:10]), 0, 0),
        TopicRecord(EP, codec.encode(EP, 10, values[10:15]), 0, 1),
        TopicRecord(EP, codec.encode(EP, 10, values[10:20]), 0, 2),
        TopicRecord(EP, codec.encode(EP, 20, values[20:]), 0, 3),
    ]
    report = run(store, key, codec, records, checkpoints)
    assert report.ok, report.reports[0].failure
    assert (report.reports[0].records, report.reports[0].sealed) == (30, 30)
    found, bad = decode_records(store, leaves_of(codec, records), KEYS)
    assert bad == 0 and len(found) == len({r.record.decision_id for r in found}) == 30


def test_a_re_sent_pack_with_a_changed_leaf_is_inserted(store, key, codec, values, checkpoints):
    """A different leaf at an index already seen is no copy: it was inserted."""
    other = leaf(store, 12, leaf_hash(values[11]), decision(12, org="pesco"))
    records = [
        TopicRecord(EP, codec.encode(EP, 0, values[:15]), 0, 0),
        TopicRecord(EP, codec.encode(EP, 10, [*values[10:12], other, *values[13:20]]), 0, 1),
        TopicRecord(EP, codec.encode(EP, 20, values[20:]), 0, 2),
    ]
    failure = failure_of(run(store, key, codec, records, checkpoints))
    assert failure.kind == "inserted" and failure.offset == 1


def test_a_verification_resumes_inside_a_pack(store, key, codec, values) -> None:
    """A checkpoint (15) can end inside a pack (10..19): the next verification starts at that
    pack, skips its leaves up to 15 and goes on from there."""
    cps = sign_checkpoints(store, key, values, [10, 15])
    records = packed(codec, values[:20], [10])
    first = run(store, key, codec, records, cps)
    assert first.ok and first.state.points[EP].tree_size == 15
    more = cps + sign_checkpoints(store, key, values, [30], 15)
    records += [TopicRecord(EP, codec.encode(EP, 20, values[20:]), 0, 2)]
    v = Verifier(store, lambda ep: [key.public_key()], resume=first.state)
    for c in as_topic(more):
        v.checkpoint(c)
    start = v.record_start()
    assert start == {0: 1}  # the pack holding leaf 14
    for r in leaves_of(codec, records):
        if r.offset >= start[0]:
            v.record(r)
    (ep,) = v.finish().reports
    assert ep.ok, ep.failure
    assert (ep.records, ep.sealed, ep.resumed_from) == (30, 30, 15)
    # The pack it resumed in, rewritten: a leaf before the anchor changed names the fork.
    forged = list(values[:20])
    forged[14] = leaf(store, 14, leaf_hash(values[13]), decision(98))
    v = Verifier(store, lambda ep: [key.public_key()], resume=first.state)
    for c in as_topic(more):
        v.checkpoint(c)
    for r in leaves_of(codec, packed(codec, forged, [10])):
        if r.offset >= 1:
            v.record(r)
    (ep,) = v.finish().reports
    assert ep.failure is not None and ep.failure.kind == "forked"


@settings(max_examples=200, deadline=None)
@given(
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_byte_changed_in_a_sealed_packed_log_fails_verification(
    store, key, codec, values, checkpoints, where, flip
):
    """Whatever byte of whichever pack is changed (header, enforcement point, first index,
    counts, lengths, a leaf's clear part or sealed content), the log no longer verifies."""
    records = packed(codec, values, [10, 20])
    total = sum(len(r.value) for r in records)
    at = int(where * total)
    for i, r in enumerate(records):
        if at < len(r.value):
            data = bytearray(r.value)
            data[at] ^= flip
            records[i] = TopicRecord(EP, bytes(data), 0, r.offset)
            break
        at -= len(r.value)
    failure_of(run(store, key, codec, records, checkpoints))


def test_a_copy_re_sent_in_a_later_batch_of_a_reading_is_read_once(store, codec, values):
    """`jcu audit query` reads the topic in batches: the restart's copy (here in the second
    batch) is skipped by what the first batch reached, not counted again."""
    first = leaves_of(codec, packed(codec, values[:15], [10]))
    second = leaves_of(codec, [TopicRecord(EP, codec.encode(EP, 10, values[10:20]), 0, 2)])
    reached: dict[str, int] = {}
    found = [
        r for batch in (first, second) for r in iter_records(store, batch, KEYS, None, reached)
    ]
    assert len(found) == len({r.record.decision_id for r in found}) == 20
    again = [r for batch in (first, second) for r in iter_records(store, batch, KEYS)]
    assert len(again) == 25  # each batch on its own: the copy counted twice
