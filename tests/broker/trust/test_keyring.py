"""Signed participant records and the keyring: which public key of whom is good when."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.errors import (
    BadSignature,
    ExpiredKey,
    KeystoreError,
    RevokedKey,
    UnknownKey,
    WrongSender,
)
from broker.trust.authority.signing import sign_record
from broker.trust.keyring import Keyring
from broker.trust.keystore import AUTHORITY_OWNER
from broker.trust.records import verify_record
from tests.broker._pki import T0, Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def _authority_key(pki: Pki) -> ed25519.Ed25519PrivateKey:
    keystore = pki.authority._keystore  # the authority's own test keystore
    return keystore.signing_key(AUTHORITY_OWNER, pki.authority.key_id)


def test_every_approved_participant_has_a_signed_record(pki: Pki) -> None:
    keyring = pki.keyring()
    assert set(keyring.participants()) == {p.id for p in pki.registry}
    for p in pki.registry:
        entry = keyring.entry(p.id)
        assert entry.community == p.community
        assert entry.kem == pki.registry.kem_of(p.id)
        assert {k.purpose for k in entry.keys} == {"signing", "kem"}
        assert entry.serial == 1
    assert keyring.entry("eda").kem == "mlkem768x25519"
    assert keyring.entry("enisa").kem == "x25519"


def test_record_bytes_are_what_is_verified(pki: Pki) -> None:
    data = (pki.authority.home / "records" / "cert-eu.avro").read_bytes()
    authority = _authority_key(pki)
    assert data[:2] == b"\xc3\x01"
    entry = verify_record(pki.store, data, authority.public_key())
    assert entry.participant == "cert-eu"
    # the same content signed again gives the same bytes (Ed25519 is deterministic)
    assert sign_record(pki.store, entry, authority) == data


def test_tampered_record_fails_the_authority_signature(pki: Pki) -> None:
    data = (pki.authority.home / "records" / "cert-eu.avro").read_bytes()
    _, rec = pki.store.decode(data)
    rec["community"] = "defence"
    forged = pki.store.encode("ParticipantRecord", rec)
    with pytest.raises(BadSignature):
        verify_record(pki.store, forged, _authority_key(pki).public_key())


def test_record_signed_by_another_key_is_unknown_key(pki: Pki) -> None:
    entry = pki.keyring().entry("cert-eu")
    rogue = ed25519.Ed25519PrivateKey.generate()
    data = sign_record(pki.store, entry, rogue)
    with pytest.raises(UnknownKey):
        verify_record(pki.store, data, _authority_key(pki).public_key())


def test_signing_key_lookup_errors(pki: Pki) -> None:
    keyring = pki.keyring()
    kid = keyring.current_signing_key_id("cert-eu", T0)
    assert keyring.signing_key("cert-eu", kid, T0)
    with pytest.raises(WrongSender):
        keyring.signing_key("enisa", kid, T0)
    with pytest.raises(UnknownKey):
        keyring.signing_key("cert-eu", "ffffffffffffffff", T0)
    kem_kid = keyring.recipient_key("cert-eu", T0).key_id
    with pytest.raises(UnknownKey):
        keyring.signing_key("cert-eu", kem_kid, T0)
    with pytest.raises(ExpiredKey):
        keyring.signing_key("cert-eu", kid, T0 + timedelta(days=366))
    with pytest.raises(ExpiredKey):
        keyring.signing_key("cert-eu", kid, T0 - timedelta(seconds=1))


def test_rotation_keeps_the_old_key_for_the_past(pki: Pki) -> None:
    old = pki.keyring().current_signing_key_id("cert-eu", T0)
    rotated_at = pki.clock.advance(timedelta(days=1))
    entry = pki.rotate("cert-eu")
    keyring = pki.keyring()
    new = keyring.current_signing_key_id("cert-eu", rotated_at)
    assert new != old and entry.serial == 2
    assert keyring.signing_key("cert-eu", old, rotated_at - timedelta(milliseconds=1))
    with pytest.raises(ExpiredKey):
        keyring.signing_key("cert-eu", old, rotated_at)
    assert (
        keyring.recipient_key("cert-eu", rotated_at).key_id
        != keyring.recipient_key("cert-eu", rotated_at - timedelta(seconds=1)).key_id
    )


def test_revocation_applies_from_its_time_on(pki: Pki) -> None:
    kid = pki.keyring().current_signing_key_id("cert-eu", T0)
    at = T0 + timedelta(hours=2)
    pki.revoke("cert-eu", "superseded", at=at)
    keyring = pki.keyring()
    assert keyring.signing_key("cert-eu", kid, at - timedelta(milliseconds=1))
    with pytest.raises(RevokedKey, match="superseded"):
        keyring.signing_key("cert-eu", kid, at)
    # superseded: what the broker appended later but was made before still verifies
    assert keyring.signing_key("cert-eu", kid, at - timedelta(seconds=1), at + timedelta(hours=1))


def test_a_compromised_key_refuses_what_was_appended_after_whatever_its_date(pki: Pki) -> None:
    kid = pki.keyring().current_signing_key_id("cert-eu", T0)
    at = T0 + timedelta(hours=2)
    pki.revoke("cert-eu", "compromised", at=at)
    keyring = pki.keyring()
    backdated = at - timedelta(hours=1)
    assert keyring.signing_key("cert-eu", kid, backdated, at - timedelta(milliseconds=1))
    with pytest.raises(RevokedKey, match="appended"):
        keyring.signing_key("cert-eu", kid, backdated, at)
    with pytest.raises(RevokedKey, match="appended"):
        keyring.signing_key("cert-eu", kid, backdated, at + timedelta(days=1))
    # no append time known (an offline `jcu open`): the signed date is all there is
    assert keyring.signing_key("cert-eu", kid, backdated)


def test_revoking_everything_leaves_no_usable_key_until_registered_again(pki: Pki) -> None:
    now = pki.clock.advance(timedelta(hours=1))
    assert pki.keyring().can_receive("enisa", now)
    pki.revoke("enisa", "compromised")
    assert not pki.keyring().can_receive("enisa", now)
    with pytest.raises(KeystoreError, match="jcu keys rotate"):
        pki.keyring().recipient_key("enisa", now)
    assert not pki.keyring().can_receive("nobody-registered", now)


def test_replace_takes_a_new_snapshot_in_place(pki: Pki) -> None:
    keyring = Keyring(())
    keyring.replace(pki.authority.records().values())
    assert "cert-eu" in keyring
    kid = keyring.current_signing_key_id("cert-eu", T0)
    assert keyring.signing_key("cert-eu", kid, T0)
    keyring.replace(e for p, e in pki.authority.records().items() if p != "cert-eu")
    assert "cert-eu" not in keyring
    with pytest.raises(UnknownKey):
        keyring.signing_key("cert-eu", kid, T0)


def test_update_ignores_an_older_serial(pki: Pki) -> None:
    keyring = pki.keyring()
    old = keyring.entry("cert-eu")
    pki.clock.advance(timedelta(hours=1))
    newer = pki.revoke("cert-eu", "compromised")
    assert keyring.update(newer)
    assert not keyring.update(old)
    assert keyring.entry("cert-eu").serial == newer.serial
