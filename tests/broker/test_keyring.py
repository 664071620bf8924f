"""Signed ParticipantRecords and the keyring's answers about keys over time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.errors import (
    BadSignature,
    ExpiredKey,
    KeystoreError,
    RegistryError,
    RevokedKey,
    UnknownKey,
    WrongSender,
)
from broker.trust.keyring import (
    Keyring,
    load_authority_public,
    sign_record,
    signed_records,
    verify_record,
)
from broker.trust.registry import Registry
from tests.broker._pki import T0, Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def test_init_creates_a_signed_record_per_participant(pki: Pki) -> None:
    keyring = pki.keyring()
    assert set(keyring.participants()) == {p.id for p in pki.registry}
    for p in pki.registry:
        entry = keyring.entry(p.id)
        assert entry.community == p.community
        assert entry.kem == pki.registry.kem_of(p.id)
        assert {k.purpose for k in entry.keys} == {"signing", "kem"}
    assert keyring.entry("eda").kem == "mlkem768x25519"
    assert keyring.entry("enisa").kem == "x25519"


def test_init_is_idempotent(pki: Pki) -> None:
    reg = pki.root / "registry"
    before = {p: (reg / f"{p}.avro").read_bytes() for p in pki.keyring().participants()}
    result = pki.admin.init_keys(pki.registry)
    assert set(result.actions.values()) == {"unchanged"}
    assert not result.authority_created
    after = {p: (reg / f"{p}.avro").read_bytes() for p in before}
    assert before == after


def test_record_bytes_are_what_is_verified(pki: Pki) -> None:
    data = (pki.root / "registry" / "cert-eu.avro").read_bytes()
    authority = pki.admin._authority(create=False)[0]
    assert data[:2] == b"\xc3\x01"
    entry = verify_record(pki.store, data, authority.public_key())
    assert entry.participant == "cert-eu"
    # the same content signed again gives the same bytes (Ed25519 is deterministic)
    assert sign_record(pki.store, entry, authority) == data


def test_tampered_record_fails_the_authority_signature(pki: Pki) -> None:
    data = bytearray((pki.root / "registry" / "cert-eu.avro").read_bytes())
    _, rec = pki.store.decode(bytes(data))
    rec["community"] = "defence"
    forged = pki.store.encode("ParticipantRecord", rec)
    authority = pki.admin._authority(create=False)[0].public_key()
    with pytest.raises(BadSignature):
        verify_record(pki.store, forged, authority)


def test_record_signed_by_another_authority_is_unknown_key(pki: Pki) -> None:
    entry = pki.keyring().entry("cert-eu")
    rogue = ed25519.Ed25519PrivateKey.generate()
    data = sign_record(pki.store, entry, rogue)
    authority = pki.admin._authority(create=False)[0].public_key()
    with pytest.raises(UnknownKey):
        verify_record(pki.store, data, authority)


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
    pki.clock.advance(timedelta(days=1))
    rotated_at = pki.clock.now
    entry = pki.admin.rotate("cert-eu")
    keyring = pki.keyring()
    new = keyring.current_signing_key_id("cert-eu", rotated_at)
    assert new != old and entry.serial == 2
    assert keyring.signing_key("cert-eu", old, rotated_at - timedelta(milliseconds=1))
    with pytest.raises(ExpiredKey):
        keyring.signing_key("cert-eu", old, rotated_at)
    assert keyring.recipient_key("cert-eu", rotated_at).key_id != keyring.recipient_key(
        "cert-eu", rotated_at - timedelta(seconds=1)
    ).key_id


def test_revocation_applies_from_its_time_on(pki: Pki) -> None:
    kid = pki.keyring().current_signing_key_id("cert-eu", T0)
    at = T0 + timedelta(hours=2)
    pki.admin.revoke("cert-eu", kid=kid, at=at, reason="lost laptop")
    keyring = pki.keyring()
    assert keyring.signing_key("cert-eu", kid, at - timedelta(milliseconds=1))
    with pytest.raises(RevokedKey, match="lost laptop"):
        keyring.signing_key("cert-eu", kid, at)
    # the KEM key was not named, so it stays
    assert keyring.recipient_key("cert-eu", at).key_id


def test_revoking_everything_leaves_no_usable_key_until_rotation(pki: Pki) -> None:
    pki.clock.advance(timedelta(hours=1))
    assert pki.keyring().can_receive("enisa", pki.clock.now)
    pki.admin.revoke("enisa")
    assert not pki.keyring().can_receive("enisa", pki.clock.now)
    with pytest.raises(KeystoreError, match="rotate"):
        pki.keyring().recipient_key("enisa", pki.clock.now)
    pki.admin.rotate("enisa")
    assert pki.keyring().can_receive("enisa", pki.clock.now)
    assert pki.keyring().recipient_key("enisa", pki.clock.now)
    assert not pki.keyring().can_receive("nobody-registered", pki.clock.now)


def test_a_record_under_the_wrong_file_name_is_refused(pki: Pki) -> None:
    reg = pki.root / "registry"
    (reg / "enisa.avro").write_bytes((reg / "cert-eu.avro").read_bytes())
    with pytest.raises(RegistryError):
        Keyring.load(reg, pki.store)


def test_registry_change_reissues_the_record(pki: Pki) -> None:
    p = pki.registry.get("hwp")
    changed = Registry(
        communities=pki.registry.communities,
        participants={**pki.registry.participants, "hwp": replace(p, status="suspended")},
    )
    result = pki.admin.init_keys(changed)
    assert result.actions["hwp"] == "updated"
    assert pki.keyring().entry("hwp").status == "suspended"
    assert pki.keyring().entry("hwp").serial == 2


def test_keyring_from_published_record_bytes_keeps_the_highest_serial(pki: Pki) -> None:
    reg = pki.root / "registry"
    first = signed_records(reg)
    pki.clock.advance(timedelta(hours=1))
    pki.admin.rotate("cert-eu")
    second = signed_records(reg)
    authority = load_authority_public(reg)
    # as a compacted topic may deliver them: newer, then an older copy
    keyring = Keyring.from_records(
        pki.store, authority, [*second.values(), first["cert-eu"]]
    )
    assert keyring.entry("cert-eu").serial == 2
    assert set(keyring.participants()) == set(first)
    with pytest.raises(BadSignature):
        eda = first["eda"]
        Keyring.from_records(pki.store, authority, [eda[:-1] + bytes([eda[-1] ^ 1])])
