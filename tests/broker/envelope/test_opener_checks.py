"""The opener's checks that a valid signature cannot stand in for.

A faulty or malicious sender signs whatever it seals, so these envelopes are
sealed, encrypted and signed properly (`_reseal`): each breaks one rule only,
and only the check under test refuses it. A control beside each shows the
same construction opens when the rule holds. (Found by `make mutation`: the
suite stayed green with the validity bound or the nonce-length check removed.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.envelope import Labels, MemoryReplayGuard, Opener, _hpke, _wire
from broker.envelope.checks import APPEND_SKEW
from broker.envelope.content_keys import NONCE_LEN
from broker.envelope.sealer import MAX_VALIDITY
from broker.errors import (
    Backdated,
    Expired,
    KeystoreError,
    NotARecipient,
    Replay,
    TamperedCiphertext,
)
from broker.trust.keystore import Keystore
from broker.trust.material import KemPrivateKey
from tests.broker._pki import PASSPHRASE, T0, WEAK_N, Pki

TOPIC = "jcu.civilian.indicators"
LABELS = Labels.of("AMBER", handling_codes=["H2"], categories=["malicious-code"])
Rec = dict[str, Any]


def _sealed(pki: Pki) -> bytes:
    record = {
        "id": str(uuid.uuid4()),
        "observable_type": "ipv4-addr",
        "value": "198.51.100.7",
        "valid_from": T0,
    }
    sealer = pki.sealer("cert-eu")
    return sealer.seal("Indicator", record, recipients=["eda"], topic=TOPIC, labels=LABELS).data


def _prefix(pki: Pki, rec: Rec) -> bytes:
    unsealed = pki.store.encode("Envelope", {**rec, "ciphertext": b"", "signature": b""})
    return _wire.prefix_of_unsealed(unsealed)


def _content_key(pki: Pki, rec: Rec, who: str = "eda") -> bytes:
    entry = next(r for r in rec["recipients"] if r["participant"] == who)
    private = pki.keystore_of(who).kem_key(who, entry["key_id"])
    info = _hpke.wrap_info(entry["kem"], rec["sender"], who, entry["key_id"], rec["content_key_id"])
    return _hpke.unwrap(entry["kem"], private, bytes(entry["wrapped_key"]), info)


def _reseal(pki: Pki, data: bytes, change: Callable[[Rec], None]) -> bytes:
    """`data` with its header changed by `change`, re-encrypted (the header is the AAD) and
    re-signed with the sender's real keys: what a lying sender could send."""
    rec = pki.store.decode(data, expected="Envelope")[1]
    key = _content_key(pki, rec)
    aad = _wire.aad(_prefix(pki, rec))
    plaintext = AESGCM(key).decrypt(bytes(rec["nonce"]), bytes(rec["ciphertext"]), aad)
    change(rec)
    prefix = _prefix(pki, rec)
    ciphertext = AESGCM(key).encrypt(bytes(rec["nonce"]), plaintext, _wire.aad(prefix))
    signer = pki.keystore_of(rec["sender"]).signing_key(rec["sender"], rec["sender_key_id"])
    return _wire.assemble(prefix, ciphertext, signer.sign(_wire.signed_message(prefix, ciphertext)))


def _resign(pki: Pki, data: bytes, change: Callable[[Rec], None]) -> bytes:
    """`data` with `change` applied and signed again, not re-encrypted."""
    rec = pki.store.decode(data, expected="Envelope")[1]
    change(rec)
    prefix, ciphertext = _prefix(pki, rec), bytes(rec["ciphertext"])
    signer = pki.keystore_of(rec["sender"]).signing_key(rec["sender"], rec["sender_key_id"])
    return _wire.assemble(prefix, ciphertext, signer.sign(_wire.signed_message(prefix, ciphertext)))


def _validity(span: timedelta) -> Callable[[Rec], None]:
    def change(rec: Rec) -> None:
        rec["expires"] = rec["created"] + span

    return change


def _nonce(nonce: bytes) -> Callable[[Rec], None]:
    def change(rec: Rec) -> None:
        rec["nonce"] = nonce

    return change


def test_a_signed_validity_over_the_maximum_is_refused(pki: Pki) -> None:
    data = _sealed(pki)
    too_long = _reseal(pki, data, _validity(MAX_VALIDITY + timedelta(milliseconds=1)))
    with pytest.raises(Expired, match="claims a validity over"):
        pki.opener("eda").open(too_long, topic=TOPIC)


def test_a_signed_validity_of_exactly_the_maximum_opens(pki: Pki) -> None:
    longest = _reseal(pki, _sealed(pki), _validity(MAX_VALIDITY))
    assert pki.opener("eda").open(longest, topic=TOPIC).expires - T0 <= MAX_VALIDITY


@pytest.mark.parametrize("length", [8, NONCE_LEN + 4, 64])
def test_a_nonce_of_another_length_is_refused_though_it_decrypts(pki: Pki, length: int) -> None:
    odd = _reseal(pki, _sealed(pki), _nonce(os.urandom(length)))
    with pytest.raises(TamperedCiphertext, match=f"nonce of {length} bytes"):
        pki.opener("eda").open(odd, topic=TOPIC)


def test_another_nonce_of_the_right_length_opens(pki: Pki) -> None:
    """The control: re-encrypting under a fresh 12-byte nonce is a valid envelope."""
    other = _reseal(pki, _sealed(pki), _nonce(os.urandom(NONCE_LEN)))
    assert pki.opener("eda").open(other, topic=TOPIC).sender == "cert-eu"


@pytest.mark.parametrize("length", [0, 7])
def test_a_nonce_too_short_for_aes_gcm_is_refused_not_a_crash(pki: Pki, length: int) -> None:
    """AES-GCM itself raises ValueError below 8 bytes: the opener refuses it first."""
    short = _resign(pki, _sealed(pki), _nonce(b"\x00" * length))
    with pytest.raises(TamperedCiphertext, match=f"nonce of {length} bytes"):
        pki.opener("eda").open(short, topic=TOPIC)


def test_a_record_appended_long_after_its_creation_is_backdated(pki: Pki) -> None:
    data = _sealed(pki)
    late = T0 + APPEND_SKEW + timedelta(seconds=1)
    with pytest.raises(Backdated):
        pki.opener("eda").open(data, topic=TOPIC, appended=late)
    in_time = T0 + APPEND_SKEW - timedelta(seconds=1)
    assert pki.opener("eda").open(data, topic=TOPIC, appended=in_time).sender == "cert-eu"


def test_a_replay_is_refused_before_any_decryption(pki: Pki) -> None:
    """The guard is asked first (step 8), so a flood of replays costs no HPKE or AES work:
    a replayed id is refused even where the ciphertext would not open."""
    rec = pki.store.decode(_sealed(pki), expected="Envelope")[1]
    guard = MemoryReplayGuard()
    guard.remember(str(rec["message_id"]), rec["expires"])

    def corrupt(r: Rec) -> None:
        r["ciphertext"] = bytes(r["ciphertext"])[:-1] + b"\x00"

    damaged = _resign(pki, pki.store.encode("Envelope", rec), corrupt)
    with pytest.raises(Replay):
        pki.opener("eda", guard=guard).open(damaged, topic=TOPIC)


class _KeystoreWithout(Keystore):
    """A node's keystore that lost one key (a restore from an old backup)."""

    def __init__(self, pki: Pki, org: str, lost: str) -> None:
        super().__init__(
            pki.nodes[org].keystore_dir, PASSPHRASE, scrypt_n=WEAK_N, min_scrypt_n=WEAK_N
        )
        self._lost = lost

    def has_key(self, owner: str, kid: str) -> bool:
        return kid != self._lost and super().has_key(owner, kid)

    def kem_key(self, owner: str, kid: str) -> KemPrivateKey:
        if kid == self._lost:
            raise KeystoreError(f"no key {kid}")
        return super().kem_key(owner, kid)


def _decoy_first(decoy_kid: str) -> Callable[[Rec], None]:
    """Put a second entry for eda, naming `decoy_kid`, before eda's real one."""

    def change(rec: Rec) -> None:
        real = next(r for r in rec["recipients"] if r["participant"] == "eda")
        rec["recipients"] = [{**real, "key_id": decoy_kid}, *rec["recipients"]]

    return change


@pytest.mark.parametrize("decoy", ["unregistered", "signing", "not-held"])
def test_an_entry_for_a_key_the_receiver_cannot_use_is_passed_over(
    fresh_pki: Pki, decoy: str
) -> None:
    """Only an entry naming one of our registered KEM keys that we hold is tried: a sender
    listing us twice (a stale key id first) still reaches us through the usable one."""
    pki = fresh_pki
    old_kem = pki.keyring().recipient_key("eda", T0).key_id
    pki.clock.advance(timedelta(hours=1))
    pki.rotate("eda")
    keyring = pki.keyring()
    assert keyring.recipient_key("eda", pki.clock()).key_id != old_kem
    decoy_kid = {
        "unregistered": "ab" * 8,
        "signing": keyring.current_signing_key_id("eda", pki.clock()),
        "not-held": old_kem,
    }[decoy]
    data = _reseal(pki, _sealed(pki), _decoy_first(decoy_kid))
    opener = Opener(
        "eda",
        keystore=_KeystoreWithout(pki, "eda", old_kem),
        keyring=keyring,
        store=pki.store,
        replay_guard=MemoryReplayGuard(),
        clock=pki.clock,
    )
    assert opener.open(data, topic=TOPIC).sender == "cert-eu"


def test_no_entry_with_a_usable_key_is_not_a_recipient(fresh_pki: Pki) -> None:
    pki = fresh_pki
    signing = pki.keyring().current_signing_key_id("eda", T0)

    def only_decoy(rec: Rec) -> None:
        rec["recipients"] = [{**r, "key_id": signing} for r in rec["recipients"]]

    data = _reseal(pki, _sealed(pki), only_decoy)
    with pytest.raises(NotARecipient, match="is not addressed to eda"):
        pki.opener("eda").open(data, topic=TOPIC)
