"""EnvelopeReader: what `decode_envelope` returns, without fastavro for a batch's siblings.

Every answer, fast or not, must equal `decode_envelope`'s (record, header and the
types fastavro gives), and bytes it cannot take must fail exactly as there.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.avro_binary import encode_bytes, encode_long
from broker.envelope import EnvelopeReader, Labels, SealRequest
from broker.envelope.header import DecodedEnvelope, decode_envelope
from broker.schemas import SchemaStore
from tests.broker._pki import T0, Pki

TOPIC = "jcu.civilian.indicators"
GREEN = Labels.of("GREEN", categories=["malicious-code"])
AMBER = Labels.of(
    "AMBER",
    handling_codes=["H2"],
    categories=["malicious-code"],
    incident="INC-7",
    member_states=["FR", "DE"],
)
RECIPIENTS = ("eda", "enisa", "soc-fr")


def _request(
    i: int, labels: Labels = GREEN, to: tuple[str, ...] = RECIPIENTS, topic: str = TOPIC, **kw: Any
) -> SealRequest:
    record = {
        "id": str(uuid.uuid4()),
        "observable_type": "domain-name",
        "value": f"c2-{i}.example.net",
        "valid_from": T0,
    }
    return SealRequest("Indicator", record, recipients=to, topic=topic, labels=labels, **kw)


def _seal(pki: Pki, sender: str, requests: list[SealRequest]) -> list[bytes]:
    return [s.data for s in pki.sealer(sender).seal_many(requests)]


def _decoded_equal(got: DecodedEnvelope, want: DecodedEnvelope) -> None:
    assert got.data is want.data
    assert got.header == want.header
    assert got.record == want.record
    assert list(got.record) == list(want.record)  # fastavro's field order
    assert {k: type(v) for k, v in got.record.items()} == {
        k: type(v) for k, v in want.record.items()
    }


def _same_as_full(reader: EnvelopeReader, store: SchemaStore, data: bytes) -> None:
    """`reader.decode(data)` returns what `decode_envelope` does, or raises the same type."""
    try:
        want = decode_envelope(store, data)
    except Exception as exc:
        refused: type[Exception] = type(exc)
    else:
        _decoded_equal(reader.decode(data), want)
        return
    with pytest.raises(refused) as caught:
        reader.decode(data)
    assert type(caught.value) is refused


@pytest.fixture(scope="module")
def batch(pki: Pki) -> list[bytes]:
    """One sender batch with two label sets (two templates), interleaved."""
    return _seal(pki, "cert-eu", [_request(i, GREEN if i % 2 else AMBER) for i in range(12)])


def test_a_batch_decodes_as_decode_envelope_and_all_but_one_per_template_fast(
    pki: Pki, batch: list[bytes]
) -> None:
    reader = EnvelopeReader(pki.store)
    for data in batch:
        _decoded_equal(reader.decode(data), decode_envelope(pki.store, data))
    assert reader.fast_hits == len(batch) - 2
    # Learnt: the same envelopes again are all answered from the templates.
    for data in batch:
        _decoded_equal(reader.decode(data), decode_envelope(pki.store, data))
    assert reader.fast_hits == 2 * len(batch) - 2


def test_labels_that_differ_only_inside_share_a_template(pki: Pki) -> None:
    """The clear header shows TLP and the exercise flag only: a batch whose labels differ
    in what is encrypted (incident, Member States, ...) has one middle, and each envelope
    still opens to its own labels."""
    requests = [
        _request(i, Labels.of("AMBER", incident=f"INC-{i}", member_states=["FR"] * (i % 2)))
        for i in range(6)
    ]
    batch = _seal(pki, "cert-eu", requests)
    reader = EnvelopeReader(pki.store)
    for data in batch:
        _decoded_equal(reader.decode(data), decode_envelope(pki.store, data))
    assert reader.fast_hits == len(batch) - 1
    opener = pki.opener("eda")
    assert [opener.open(d, topic=TOPIC).labels for d in batch] == [r.labels for r in requests]


def test_the_record_gets_fastavro_types(pki: Pki, batch: list[bytes]) -> None:
    reader = EnvelopeReader(pki.store)
    reader.decode(batch[0])
    rec = reader.decode(batch[2]).record
    assert reader.fast_hits == 1
    assert isinstance(rec["message_id"], uuid.UUID)
    assert rec["created"].tzinfo is not None
    assert all(type(rec[k]) is bytes for k in ("nonce", "ciphertext", "signature"))


def test_a_caller_changing_its_record_does_not_change_the_next(
    pki: Pki, batch: list[bytes]
) -> None:
    reader = EnvelopeReader(pki.store)
    first = reader.decode(batch[0]).record  # the full decode it learnt from
    second = reader.decode(batch[2]).record  # a fast one
    for rec in (first, second):
        rec["tlp"] = "CLEAR"
        rec["content_key_id"] = b"mallory"
        rec["recipients"][0]["participant"] = "mallory"
        rec["recipients"].append({"participant": "mallory"})
        rec["sender"] = "mallory"
    for data in (batch[4], batch[6], batch[0]):
        _decoded_equal(reader.decode(data), decode_envelope(pki.store, data))
    assert reader.fast_hits == 4


def test_senders_and_topics_interleaved_share_the_lru(pki: Pki) -> None:
    civ = _seal(pki, "cert-eu", [_request(i) for i in range(6)])
    defence = _seal(
        pki,
        "cert-eu",
        [
            _request(
                i, to=("eda", "enisa"), topic="jcu.defence.indicators", target_community="defence"
            )
            for i in range(6)
        ],
    )
    other = _seal(pki, "enisa", [_request(i, to=("cert-eu", "eda")) for i in range(6)])
    reader = EnvelopeReader(pki.store, templates=3)
    for trio in zip(civ, defence, other, strict=True):
        for data in trio:
            _decoded_equal(reader.decode(data), decode_envelope(pki.store, data))
    assert reader.fast_hits == 3 * 6 - 3
    headers = {reader.decode(d).header.sender for d in (civ[0], other[0])}
    assert headers == {"cert-eu", "enisa"}


def test_a_full_lru_forgets_the_least_recently_used(pki: Pki) -> None:
    first = _seal(pki, "cert-eu", [_request(i, topic="jcu.civilian.incidents") for i in range(3)])
    second = _seal(pki, "cert-eu", [_request(i) for i in range(3)])
    reader = EnvelopeReader(pki.store, templates=1)
    reader.decode(first[0])
    reader.decode(second[0])  # evicts the first batch's template
    reader.decode(first[1])
    assert reader.fast_hits == 0
    reader.decode(first[2])
    assert reader.fast_hits == 1


def test_single_envelopes_each_decode_in_full(pki: Pki) -> None:
    reader = EnvelopeReader(pki.store)
    for i in range(3):  # each its own expiry: a middle of its own, as with a clock ticking
        data = _seal(pki, "cert-eu", [_request(i, validity=timedelta(days=1 + i))])[0]
        _decoded_equal(reader.decode(data), decode_envelope(pki.store, data))
    assert reader.fast_hits == 0


def _with_fields(pki: Pki, data: bytes, **fields: Any) -> bytes:
    rec = pki.store.decode(data, expected="Envelope")[1]
    rec.update(fields)
    return pki.store.encode("Envelope", rec)


@pytest.mark.parametrize(
    "message_id",
    [
        pytest.param(lambda u: u.upper(), id="uppercase"),
        pytest.param(lambda u: "{" + u + "}", id="braces"),
        pytest.param(lambda u: u.replace("-", ""), id="no-hyphens"),
        pytest.param(lambda u: "urn:uuid:" + u, id="urn"),
        pytest.param(lambda u: u[:-1] + "g", id="not-hex"),
        pytest.param(lambda u: u[:-1] + "é", id="non-ascii"),
        pytest.param(lambda u: "", id="empty"),
    ],
)
def test_message_ids_fastavro_reads_differently_go_to_the_full_decode(
    pki: Pki, batch: list[bytes], message_id: Any
) -> None:
    reader = EnvelopeReader(pki.store)
    reader.decode(batch[0])
    odd = _with_fields(pki, batch[2], message_id=message_id(str(uuid.uuid4())))
    _same_as_full(reader, pki.store, odd)
    assert reader.fast_hits == 0


def test_a_middle_cut_wrong_by_overlong_varints_is_never_used(pki: Pki, batch: list[bytes]) -> None:
    """A one byte longer signature length moves the nonce back: the middle cut from the
    canonical lengths swallows the nonce's length byte. Bytes that share that middle
    parse after it as other fields than fastavro reads; the middle is refused because
    it does not decode to its own length."""
    data = batch[0]
    nonce_at = _tail_varints(pki, data)[1][0]
    signature = pki.store.decode(data, expected="Envelope")[1]["signature"]
    length = encode_long(len(signature))
    overlong = length[:-1] + bytes([length[-1] | 0x80, 0x00])
    learnt = data[: -len(length + signature)] + overlong + signature
    # fastavro: nonce 00 00 1a + 9 bytes, ciphertext b"c", signature b"s"; after the
    # swallowed 0x18: nonce b"", ciphertext b"", signature the 13 bytes after 1a.
    crafted = data[:nonce_at] + b"\x18" + b"\x00\x00\x1a" + bytes(9) + b"\x02c\x02s"
    assert decode_envelope(pki.store, crafted).record["signature"] == b"s"
    reader = EnvelopeReader(pki.store)
    _same_as_full(reader, pki.store, learnt)
    _same_as_full(reader, pki.store, crafted)
    assert reader.fast_hits == 0
    # The refused middle does not stand in the way of the real one, learnt from `crafted`
    # (canonical) and shared by the batch.
    for again in (crafted, batch[2], batch[4]):
        _same_as_full(reader, pki.store, again)
    assert reader.fast_hits == 3


def _tail_varints(pki: Pki, data: bytes) -> list[tuple[int, int]]:
    """Spans of the length varints of message id, nonce, ciphertext and signature."""
    rec = pki.store.decode(data, expected="Envelope")[1]
    sig, ct, nonce = (encode_bytes(rec[k]) for k in ("signature", "ciphertext", "nonce"))
    sig_at = len(data) - len(sig)
    ct_at = sig_at - len(ct)
    nonce_at = ct_at - len(nonce)
    return [
        (11, 12),
        (nonce_at, nonce_at + len(encode_long(len(rec["nonce"])))),
        (ct_at, ct_at + len(encode_long(len(rec["ciphertext"])))),
        (sig_at, sig_at + len(encode_long(len(rec["signature"])))),
    ]


def _mutations() -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.tuples(st.just("flip"), st.tuples(st.integers(0, 10**6), st.integers(1, 255))),
        st.tuples(st.just("flip-tail"), st.tuples(st.integers(1, 200), st.integers(1, 255))),
        st.tuples(st.just("truncate"), st.integers(1, 10**6)),
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=8)),
        st.tuples(
            st.just("varint"),
            st.tuples(
                st.integers(0, 3),
                st.one_of(
                    st.binary(min_size=1, max_size=6),  # any bytes in its place
                    st.integers(-3, 3).map(lambda d: ("delta", d)),
                    st.just(("overlong", 0)),
                    st.just(("sign", 0)),  # the zig-zag sign bit: a negative length
                ),
            ),
        ),
    )


def _mutate(pki: Pki, data: bytes, kind: str, arg: Any) -> bytes:
    if kind == "flip":
        i, mask = arg
        i %= len(data)
        return data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :]
    if kind == "flip-tail":  # nonce, ciphertext and signature: where the fast path parses
        back, mask = arg
        i = len(data) - back
        return data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :]
    if kind == "truncate":
        return data[: arg % len(data)]
    if kind == "append":
        return data + arg
    which, change = arg
    start, end = _tail_varints(pki, data)[which]
    raw = data[start:end]
    if isinstance(change, bytes):
        new = change
    else:
        how, delta = change
        value = 0
        for shift, b in enumerate(raw):
            value |= (b & 0x7F) << (7 * shift)
        value >>= 1
        if how == "delta":
            length = value + delta
            new = encode_long(length) if length >= 0 else bytes([(-length << 1) - 1])
        elif how == "overlong":
            new = raw[:-1] + bytes([raw[-1] | 0x80, 0x00])
        else:
            new = bytes([raw[0] ^ 1]) + raw[1:]
    return data[:start] + new + data[end:]


@pytest.mark.parametrize(
    "which", [0, 1, 2, 3], ids=["message_id", "nonce", "ciphertext", "signature"]
)
@pytest.mark.parametrize(
    "change",
    [("sign", 0), ("overlong", 0), ("delta", -1), ("delta", 1)],
    ids=lambda c: f"{c[0]}{c[1] or ''}",
)
def test_a_changed_length_decodes_or_fails_as_decode_envelope(
    pki: Pki, batch: list[bytes], which: int, change: tuple[str, int]
) -> None:
    reader = EnvelopeReader(pki.store)
    reader.decode(batch[0])
    reader.decode(batch[2])
    assert reader.fast_hits == 1
    _same_as_full(reader, pki.store, _mutate(pki, batch[4], "varint", (which, change)))


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, 11), mutation=_mutations(), twice=st.booleans())
def test_mutated_envelopes_decode_or_fail_as_decode_envelope(
    pki: Pki, batch: list[bytes], index: int, mutation: tuple[str, Any], twice: bool
) -> None:
    reader = EnvelopeReader(pki.store)
    original = batch[index]
    reader.decode(original)
    sibling = batch[(index + 2) % len(batch)]  # same labels: the same template
    _decoded_equal(reader.decode(sibling), decode_envelope(pki.store, sibling))
    assert reader.fast_hits == 1
    mutated = _mutate(pki, original, *mutation)
    _same_as_full(reader, pki.store, mutated)
    if twice:  # learnt from the mutated bytes, if they decoded: the same again
        _same_as_full(reader, pki.store, bytes(mutated))
    # Nothing learnt from the mutated bytes changes how the batch decodes.
    for data in (original, sibling, batch[(index + 1) % len(batch)]):
        _decoded_equal(reader.decode(data), decode_envelope(pki.store, data))
