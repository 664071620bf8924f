"""Every way of changing a sealed record is refused, each with its specific error."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from broker.envelope import Labels, SqliteReplayGuard, _wire
from broker.errors import (
    BadSignature,
    Expired,
    ExpiredKey,
    MalformedRecord,
    NotARecipient,
    Rejected,
    Replay,
    RevokedKey,
    TamperedCiphertext,
    UnknownKey,
    UnsupportedVersion,
    WrongSender,
    WrongTopic,
)
from broker.trust.keyring import Keyring
from tests.broker._pki import T0, FakeClock, Pki

TOPIC = "jcu.civilian.indicators"
LABELS = Labels.of(
    "AMBER",
    handling_codes=["H2"],
    categories=["malicious-code"],
    exercise=None,
    incident="INC-1",
    member_states=["FR"],
)
Rec = dict[str, Any]


def _record(value: str = "203.0.113.9") -> Rec:
    return {
        "id": str(uuid.uuid4()),
        "observable_type": "ipv4-addr",
        "value": value,
        "valid_from": T0,
    }


def _seal(pki: Pki, to: tuple[str, ...] = ("eda", "enisa"), **kw: Any) -> bytes:
    return (
        pki.sealer("cert-eu")
        .seal(
            "Indicator",
            _record(),
            recipients=list(to),
            topic=kw.pop("topic", TOPIC),
            labels=LABELS,
            **kw,
        )
        .data
    )


def _decode(pki: Pki, data: bytes) -> Rec:
    return pki.store.decode(data, expected="Envelope")[1]


def _reencode(pki: Pki, rec: Rec) -> bytes:
    return pki.store.encode("Envelope", rec)


def _flip(b: bytes, i: int = 0) -> bytes:
    i %= len(b)
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1 :]


def _signing_kid(pki: Pki, who: str) -> str:
    return pki.keyring().current_signing_key_id(who, T0)


def _set(field: str, value: Any) -> Callable[[Rec, Pki], None]:
    def apply(r: Rec, _: Pki) -> None:
        r[field] = value

    return apply


def _recipients(fn: Callable[[list[Rec]], list[Rec]]) -> Callable[[Rec, Pki], None]:
    def apply(r: Rec, _: Pki) -> None:
        r["recipients"] = fn([dict(x) for x in r["recipients"]])

    return apply


def _recipient_field(field: str, value: Callable[[Any], Any]) -> Callable[[Rec, Pki], None]:
    return _recipients(lambda rs: [{**rs[0], field: value(rs[0][field])}, *rs[1:]])


# (envelope field, mutation, expected error)
MUTATIONS: list[tuple[str, Callable[[Rec, Pki], None], type[Rejected]]] = [
    ("version", _set("version", 3), UnsupportedVersion),
    # version 1 is known, but not written with this (version 2) schema
    ("version", _set("version", 1), MalformedRecord),
    ("message_id", _set("message_id", str(uuid.uuid4())), BadSignature),
    ("sender", _set("sender", "enisa"), WrongSender),
    ("sender_key_id", lambda r, p: r.update(sender_key_id=_signing_kid(p, "enisa")), WrongSender),
    ("sender_key_id", _set("sender_key_id", "00" * 8), UnknownKey),
    ("signature_algorithm", _set("signature_algorithm", "ed448"), UnsupportedVersion),
    (
        "created",
        lambda r, _: r.update(created=r["created"] + timedelta(milliseconds=1)),
        BadSignature,
    ),
    # claiming a time before the sender's key existed fails the key check first
    (
        "created",
        lambda r, _: r.update(created=r["created"] - timedelta(milliseconds=1)),
        ExpiredKey,
    ),
    ("expires", lambda r, _: r.update(expires=r["expires"] + timedelta(days=1)), BadSignature),
    ("origin_community", _set("origin_community", "defence"), WrongSender),
    ("target_community", _set("target_community", "defence"), BadSignature),
    ("topic", _set("topic", "jcu.defence.indicators"), WrongTopic),
    ("payload_type", _set("payload_type", "eu.jcu.v1.IncidentReport"), BadSignature),
    ("payload_fingerprint", lambda r, _: r.update(payload_fingerprint=b"\x00" * 8), BadSignature),
    ("tlp", _set("tlp", "CLEAR"), BadSignature),
    ("tlp", _set("tlp", "AMBER_STRICT"), BadSignature),
    ("exercise", _set("exercise", True), BadSignature),
    ("content_algorithm", _set("content_algorithm", "chacha20-poly1305"), UnsupportedVersion),
    (
        "content_key_id",
        lambda r, _: r.update(content_key_id=_flip(r["content_key_id"])),
        BadSignature,
    ),
    ("recipients", _recipients(lambda rs: rs[1:]), BadSignature),  # drop one
    ("recipients", _recipients(lambda rs: rs[::-1]), BadSignature),  # reorder
    ("recipients", _recipients(lambda rs: [*rs, {**rs[0], "participant": "hwp"}]), BadSignature),
    ("recipients", _recipient_field("participant", lambda _: "pesco"), BadSignature),
    ("recipients", _recipient_field("key_id", lambda _: "11" * 8), BadSignature),
    ("recipients", _recipient_field("kem", lambda _: "x25519"), BadSignature),
    ("recipients", _recipient_field("wrapped_key", lambda w: _flip(w, 5)), BadSignature),
    ("nonce", lambda r, _: r.update(nonce=_flip(r["nonce"], 11)), BadSignature),
    ("ciphertext", lambda r, _: r.update(ciphertext=_flip(r["ciphertext"], 0)), BadSignature),
    ("ciphertext", lambda r, _: r.update(ciphertext=_flip(r["ciphertext"], -1)), BadSignature),
    ("ciphertext", lambda r, _: r.update(ciphertext=r["ciphertext"][:-1]), BadSignature),
    ("signature", lambda r, _: r.update(signature=_flip(r["signature"], 0)), BadSignature),
    ("signature", lambda r, _: r.update(signature=_flip(r["signature"], 63)), BadSignature),
    ("signature", lambda r, _: r.update(signature=b""), BadSignature),
]


def test_the_mutations_cover_every_envelope_field(pki: Pki) -> None:
    fields = {f["name"] for f in pki.store.schema("Envelope")["fields"]}
    assert {name for name, _, _ in MUTATIONS} == fields


def test_reencoding_an_untouched_envelope_is_byte_identical(pki: Pki) -> None:
    data = _seal(pki)
    assert _reencode(pki, _decode(pki, data)) == data
    assert pki.opener("eda").open(_reencode(pki, _decode(pki, data)), topic=TOPIC)


@pytest.mark.parametrize(
    ("field", "mutate", "error"),
    MUTATIONS,
    ids=[f"{i}-{m[0]}-{m[2].__name__}" for i, m in enumerate(MUTATIONS)],
)
def test_mutated_field_is_rejected_with_its_error(
    pki: Pki, field: str, mutate: Callable[[Rec, Pki], None], error: type[Rejected]
) -> None:
    rec = _decode(pki, _seal(pki))
    mutate(rec, pki)
    with pytest.raises(error) as caught:
        pki.opener("eda").open(_reencode(pki, rec), topic=TOPIC)
    assert type(caught.value) is error  # not merely a subclass or a sibling


def test_bit_flips_anywhere_in_the_bytes_never_open(pki: Pki) -> None:
    data = _seal(pki)
    opener = pki.opener("eda")
    for i in range(0, len(data), 7):
        with pytest.raises(Rejected):
            opener.open(_flip(data, i), topic=TOPIC)
    assert opener.open(data, topic=TOPIC).sender == "cert-eu"


def test_truncated_bytes_are_malformed(pki: Pki) -> None:
    data = _seal(pki)
    for cut in (1, 64, len(data) // 2):
        with pytest.raises(MalformedRecord):
            pki.opener("eda").open(data[:-cut], topic=TOPIC)


def test_recipients_block_spliced_from_another_message(pki: Pki) -> None:
    victim = _decode(pki, _seal(pki, to=("enisa",)))
    other = _decode(pki, _seal(pki, to=("eda", "enisa")))
    victim["recipients"] = other["recipients"]
    victim["content_key_id"] = other["content_key_id"]
    with pytest.raises(BadSignature):
        pki.opener("eda").open(_reencode(pki, victim), topic=TOPIC)


def test_record_moved_to_another_topic(pki: Pki) -> None:
    data = _seal(pki)
    with pytest.raises(WrongTopic):
        pki.opener("eda").open(data, topic="jcu.defence.indicators")
    # rewriting the header's topic to match does not help: the signature covers it
    rec = _decode(pki, data)
    rec["topic"] = "jcu.defence.indicators"
    with pytest.raises(BadSignature):
        pki.opener("eda").open(_reencode(pki, rec), topic="jcu.defence.indicators")


def test_replay_is_rejected(pki: Pki) -> None:
    data = _seal(pki)
    opener = pki.opener("eda")
    opener.open(data, topic=TOPIC)
    with pytest.raises(Replay):
        opener.open(data, topic=TOPIC)


def test_replay_is_rejected_after_a_restart(pki: Pki, tmp_path: Any) -> None:
    data = _seal(pki)
    with SqliteReplayGuard(tmp_path / "eda.sqlite") as guard:
        pki.opener("eda", guard=guard).open(data, topic=TOPIC)
    with SqliteReplayGuard(tmp_path / "eda.sqlite") as guard, pytest.raises(Replay):
        pki.opener("eda", guard=guard).open(data, topic=TOPIC)


def test_outside_the_validity_window_is_expired(pki: Pki) -> None:
    data = _seal(pki, validity=timedelta(hours=1))
    late = FakeClock(T0 + timedelta(hours=1))
    with pytest.raises(Expired):
        pki.opener("eda", clock=late).open(data, topic=TOPIC)
    early = FakeClock(T0 - timedelta(minutes=10))  # sender clock far ahead of ours
    with pytest.raises(Expired):
        pki.opener("eda", clock=early).open(data, topic=TOPIC)
    ok = FakeClock(T0 + timedelta(minutes=59))
    assert pki.opener("eda", clock=ok).open(data, topic=TOPIC)


def test_non_recipient_is_rejected(pki: Pki) -> None:
    with pytest.raises(NotARecipient):
        pki.opener("europol-ec3").open(_seal(pki), topic=TOPIC)


def test_unknown_sender_is_unknown_key(pki: Pki) -> None:
    data = _seal(pki)
    keyring = Keyring(pki.keyring().entry(p) for p in ("eda", "enisa"))  # no cert-eu
    with pytest.raises(UnknownKey):
        pki.opener("eda", keyring=keyring).open(data, topic=TOPIC)


def _resign(pki: Pki, rec: Rec) -> bytes:
    """Re-sign a modified envelope with the sender's real key (a faulty or malicious sender)."""
    key = pki.keystore_of(rec["sender"]).signing_key(rec["sender"], rec["sender_key_id"])
    prefix = _wire.prefix_of_unsealed(_reencode(pki, {**rec, "ciphertext": b"", "signature": b""}))
    ct = bytes(rec["ciphertext"])
    return _wire.assemble(prefix, ct, key.sign(_wire.signed_message(prefix, ct)))


def test_signed_but_corrupt_ciphertext_is_tampered_ciphertext(pki: Pki) -> None:
    rec = _decode(pki, _seal(pki))
    rec["ciphertext"] = _flip(rec["ciphertext"], 3)
    with pytest.raises(TamperedCiphertext):
        pki.opener("eda").open(_resign(pki, rec), topic=TOPIC)


def test_signed_but_corrupt_wrapped_key_is_tampered_ciphertext(pki: Pki) -> None:
    rec = _decode(pki, _seal(pki, to=("eda",)))
    rec["recipients"][0]["wrapped_key"] = _flip(rec["recipients"][0]["wrapped_key"], 40)
    with pytest.raises(TamperedCiphertext):
        pki.opener("eda").open(_resign(pki, rec), topic=TOPIC)


def test_wrapped_key_for_another_recipient_does_not_open(pki: Pki) -> None:
    """A sender cannot hand eda the key wrapped for enisa: HPKE info binds the recipient."""
    rec = _decode(pki, _seal(pki, to=("eda", "enisa")))
    eda, enisa = rec["recipients"]
    rec["recipients"] = [{**eda, "wrapped_key": enisa["wrapped_key"], "kem": enisa["kem"]}]
    with pytest.raises(TamperedCiphertext):
        pki.opener("eda").open(_resign(pki, rec), topic=TOPIC)


def test_header_changed_after_encryption_fails_the_aad_even_if_re_signed(pki: Pki) -> None:
    rec = _decode(pki, _seal(pki))
    rec["payload_type"] = "eu.jcu.v1.Receipt"
    with pytest.raises(TamperedCiphertext):
        pki.opener("eda").open(_resign(pki, rec), topic=TOPIC)


def test_revoked_key_refuses_messages_created_after_revocation(fresh_pki: Pki) -> None:
    pki = fresh_pki
    before_keyring = pki.keyring()
    early = _seal(pki)  # created at T0
    pki.clock.advance(timedelta(hours=1))
    pki.revoke("cert-eu", "compromised")
    pki.clock.advance(timedelta(minutes=1))
    # a thief still holding the key seals with the old (pre-revocation) view
    late = (
        pki.sealer("cert-eu", keyring=before_keyring)
        .seal("Indicator", _record(), recipients=["eda"], topic=TOPIC, labels=LABELS)
        .data
    )
    with pytest.raises(RevokedKey):
        pki.opener("eda").open(late, topic=TOPIC)
    # revocation is not retroactive: the earlier message still verifies
    assert pki.opener("eda").open(early, topic=TOPIC).sender == "cert-eu"


def test_rotated_key_still_verifies_older_messages_but_not_newer(fresh_pki: Pki) -> None:
    pki = fresh_pki
    before_keyring = pki.keyring()
    early = _seal(pki)
    pki.clock.advance(timedelta(hours=1))
    pki.rotate("cert-eu")
    pki.clock.advance(timedelta(minutes=1))
    stale = (
        pki.sealer("cert-eu", keyring=before_keyring)
        .seal("Indicator", _record(), recipients=["eda"], topic=TOPIC, labels=LABELS)
        .data
    )
    with pytest.raises(ExpiredKey):
        pki.opener("eda").open(stale, topic=TOPIC)
    assert pki.opener("eda").open(early, topic=TOPIC).sender == "cert-eu"
    fresh = _seal(pki)
    opened = pki.opener("eda").open(fresh, topic=TOPIC)
    assert opened.sender_key_id != _decode(pki, early)["sender_key_id"]


def test_recipient_rotation_old_messages_still_open(fresh_pki: Pki) -> None:
    pki = fresh_pki
    early = _seal(pki, to=("eda",))
    pki.clock.advance(timedelta(hours=1))
    pki.rotate("eda")
    late = _seal(pki, to=("eda",))
    assert (
        _decode(pki, early)["recipients"][0]["key_id"]
        != _decode(pki, late)["recipients"][0]["key_id"]
    )
    opener = pki.opener("eda")
    assert opener.open(early, topic=TOPIC) and opener.open(late, topic=TOPIC)


def test_expired_key_is_rejected(fresh_pki: Pki) -> None:
    pki = fresh_pki
    data = _seal(pki)
    # the authority's record says the key expired one minute before the message
    keyring = pki.keyring()
    entry = keyring.entry("cert-eu")
    short = replace(
        entry,
        keys=tuple(
            replace(k, not_after=T0 - timedelta(minutes=1)) if k.purpose == "signing" else k
            for k in entry.keys
        ),
    )
    others = [keyring.entry(p) for p in keyring.participants() if p != "cert-eu"]
    with pytest.raises(ExpiredKey):
        pki.opener("eda", keyring=Keyring([short, *others])).open(data, topic=TOPIC)
