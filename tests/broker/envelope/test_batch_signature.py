"""Batch signatures: one Ed25519 signature per batch, every envelope verifiable on its own."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.envelope import Labels, SealRequest, _batch_sig, _wire
from broker.errors import BadSignature, Replay, UnsupportedVersion
from tests.broker._pki import T0, Pki

TOPIC = "jcu.civilian.indicators"
LABELS = Labels.of("GREEN", categories=["malicious-code"])


def _request(i: int, to: tuple[str, ...] = ("eda", "enisa")) -> SealRequest:
    record = {
        "id": str(uuid.uuid4()),
        "observable_type": "domain-name",
        "value": f"c2-{i}.example.net",
        "valid_from": T0,
    }
    return SealRequest("Indicator", record, recipients=to, topic=TOPIC, labels=LABELS)


def _batch(pki: Pki, n: int) -> list[bytes]:
    return [s.data for s in pki.sealer("cert-eu").seal_many([_request(i) for i in range(n)])]


def _decode(pki: Pki, data: bytes) -> dict[str, Any]:
    return pki.store.decode(data, expected="Envelope")[1]


def _with_signature_field(pki: Pki, data: bytes, field: bytes) -> bytes:
    rec = _decode(pki, data)
    rec["signature"] = field
    return pki.store.encode("Envelope", rec)


def test_a_batch_is_signed_once_and_each_envelope_opens_alone(pki: Pki) -> None:
    batch = _batch(pki, 7)
    fields = [bytes(_decode(pki, d)["signature"]) for d in batch]
    assert {_decode(pki, d)["signature_algorithm"] for d in batch} == {_batch_sig.ALGORITHM}
    assert len({f[:64] for f in fields}) == 1  # one Ed25519 signature for all seven
    assert [struct.unpack(">II", f[64:72]) for f in fields] == [(i, 7) for i in range(7)]
    for data in reversed(batch):  # each with a fresh opener: nothing learnt from the others
        opened = pki.opener("eda").open(data, topic=TOPIC)
        assert opened.record["value"].startswith("c2-")


def test_a_single_request_keeps_the_plain_signature(pki: Pki) -> None:
    (sealed,) = pki.sealer("cert-eu").seal_many([_request(0)])
    rec = _decode(pki, sealed.data)
    assert rec["signature_algorithm"] == _wire.SIGNATURE_ALGORITHM
    assert len(rec["signature"]) == 64
    assert pki.opener("enisa").open(sealed.data, topic=TOPIC)


def test_batches_larger_than_the_maximum_are_split(pki: Pki) -> None:
    n = _batch_sig.MAX_BATCH + 3
    batch = _batch(pki, n)
    sizes = [struct.unpack(">II", bytes(_decode(pki, d)["signature"])[64:72])[1] for d in batch]
    assert sizes == [_batch_sig.MAX_BATCH] * _batch_sig.MAX_BATCH + [3] * 3
    opener = pki.opener("eda")
    assert all(opener.open(d, topic=TOPIC) for d in (batch[0], batch[-1]))


def test_one_verification_per_batch(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = _batch(pki, 20)
    opener = pki.opener("eda")
    calls = []
    real = _batch_sig._root_message
    monkeypatch.setattr(_batch_sig, "_root_message", lambda n, r: calls.append(n) or real(n, r))
    for data in batch:
        opener.open(data, topic=TOPIC)
    assert calls == [20]


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda f: f[:10] + bytes([f[10] ^ 1]) + f[11:], id="signature-bit"),
        pytest.param(lambda f: f[:64] + struct.pack(">I", 1) + f[68:], id="other-index"),
        pytest.param(lambda f: f[:68] + struct.pack(">I", 9) + f[72:], id="other-size"),
        pytest.param(lambda f: f[:-1] + bytes([f[-1] ^ 1]), id="proof-bit"),
        pytest.param(lambda f: f[:-32], id="proof-too-short"),
        pytest.param(lambda f: f + f[-32:], id="proof-too-long"),
        pytest.param(lambda f: f[:64], id="no-proof"),
        pytest.param(lambda f: f[:71], id="truncated-position"),
        pytest.param(lambda f: b"", id="empty"),
    ],
)
def test_a_changed_signature_field_is_a_bad_signature(pki: Pki, mutate: Any) -> None:
    data = _batch(pki, 5)[2]
    field = bytes(_decode(pki, data)["signature"])
    with pytest.raises(BadSignature):
        pki.opener("eda").open(_with_signature_field(pki, data, mutate(field)), topic=TOPIC)


def test_a_proof_from_a_sibling_envelope_does_not_verify(pki: Pki) -> None:
    batch = _batch(pki, 4)
    sibling = bytes(_decode(pki, batch[1])["signature"])
    with pytest.raises(BadSignature):
        pki.opener("eda").open(_with_signature_field(pki, batch[0], sibling), topic=TOPIC)


def test_a_verified_root_does_not_excuse_a_changed_envelope(pki: Pki) -> None:
    """The cache holds roots, not messages: a tampered sibling still fails its proof."""
    batch = _batch(pki, 4)
    opener = pki.opener("eda")
    opener.open(batch[0], topic=TOPIC)
    rec = _decode(pki, batch[1])
    rec["tlp"] = "CLEAR"
    with pytest.raises(BadSignature):
        opener.open(pki.store.encode("Envelope", rec), topic=TOPIC)


def test_the_algorithm_cannot_be_swapped(pki: Pki) -> None:
    """A batch envelope relabelled as singly signed (and the reverse) never verifies."""
    batch = _batch(pki, 3)
    rec = _decode(pki, batch[0])
    rec["signature_algorithm"] = _wire.SIGNATURE_ALGORITHM
    with pytest.raises(BadSignature):
        pki.opener("eda").open(pki.store.encode("Envelope", rec), topic=TOPIC)
    single = _decode(pki, pki.sealer("cert-eu").seal_many([_request(9)])[0].data)
    single["signature_algorithm"] = _batch_sig.ALGORITHM
    with pytest.raises(BadSignature):
        pki.opener("eda").open(pki.store.encode("Envelope", single), topic=TOPIC)


def test_another_senders_batch_root_is_not_trusted(pki: Pki) -> None:
    """A root verified under one sender's key is cached for that key only."""
    opener = pki.opener("eda")
    ours = _batch(pki, 2)
    opener.open(ours[0], topic=TOPIC)
    theirs = pki.sealer("enisa").seal_many([_request(i, ("eda",)) for i in range(2)])
    rec = _decode(pki, theirs[0].data)
    rec["sender"], rec["sender_key_id"] = "cert-eu", _decode(pki, ours[0])["sender_key_id"]
    with pytest.raises(BadSignature):
        opener.open(pki.store.encode("Envelope", rec), topic=TOPIC)


def test_unknown_algorithm_is_unsupported(pki: Pki) -> None:
    rec = _decode(pki, _batch(pki, 2)[0])
    rec["signature_algorithm"] = "ed25519-merkle-v2"
    with pytest.raises(UnsupportedVersion):
        pki.opener("eda").open(pki.store.encode("Envelope", rec), topic=TOPIC)


def test_replay_of_a_batch_member_is_refused(pki: Pki) -> None:
    data = _batch(pki, 3)[1]
    opener = pki.opener("eda")
    opener.open(data, topic=TOPIC)
    with pytest.raises(Replay):
        opener.open(data, topic=TOPIC)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40), st.data())
def test_every_leaf_of_every_batch_size_verifies(leaves: list[bytes], data: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    fields = _batch_sig.sign_batch(key, leaves)
    verifier = _batch_sig.BatchVerifier()
    for leaf, field in zip(leaves, fields, strict=True):
        assert verifier.verify(key.public_key(), b"k", leaf, field)
    i = data.draw(st.integers(0, len(leaves) - 1))
    other = bytes(b ^ 0xFF for b in leaves[i])
    assert not _batch_sig.BatchVerifier().verify(key.public_key(), b"k", other, fields[i])


def test_spliced_envelopes_equal_a_fresh_encoding(pki: Pki) -> None:
    """Envelopes of a batch share an encoded header template; each must still be exactly
    the Avro encoding of its own record (mixed topics, labels, recipients and ids)."""
    requests = [
        _request(0),
        SealRequest(
            "Indicator",
            _request(1).record,
            recipients=("enisa",),
            topic="jcu.civilian.indicators",
            labels=Labels.of("AMBER"),
            message_id=str(uuid.uuid4()),
        ),
        _request(2),
        SealRequest(
            "Indicator",
            _request(3).record,
            recipients=("eda", "enisa"),
            topic="jcu.defence.indicators",
            labels=LABELS,
            target_community="defence",
        ),
    ]
    for sealed in pki.sealer("cert-eu").seal_many(requests):
        rec = _decode(pki, sealed.data)
        assert pki.store.encode("Envelope", rec) == sealed.data
        assert sealed.header.message_id == str(rec["message_id"])
        assert sealed.header.topic == rec["topic"]
    ids = [s.message_id for s in pki.sealer("cert-eu").seal_many(requests)]
    assert len(set(ids)) == 4 and ids[1] == requests[1].message_id


def test_a_batch_of_mixed_labels_shows_and_opens_each_envelopes_own(pki: Pki) -> None:
    """Envelopes of one batch share header bytes only where their labels show the same
    in the clear: each keeps its own TLP and exercise flag, and opens to its own labels."""
    variants = [
        Labels.of("GREEN"),
        Labels.of("GREEN", exercise="ce-2026"),
        Labels.of("RED", exercise="ce-2026"),
        Labels.of("RED", incident="INC-3"),
        Labels.of("GREEN", categories=["fraud"]),
    ]
    requests = [
        SealRequest("Indicator", _request(i).record, recipients=("eda",), topic=TOPIC, labels=lab)
        for i, lab in enumerate(variants)
    ]
    sealed = pki.sealer("cert-eu").seal_many(requests)
    opener = pki.opener("eda")
    for s, labels in zip(sealed, variants, strict=True):
        rec = _decode(pki, s.data)
        assert (rec["tlp"], rec["exercise"]) == (labels.tlp, labels.exercise is not None)
        assert (s.header.tlp, s.header.exercise) == (labels.tlp, labels.exercise is not None)
        assert opener.open(s.data, topic=TOPIC).labels == labels
