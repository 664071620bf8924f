"""Registration requests prove possession of every new signing key and verify as a whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.errors import BadSignature, RegistryError
from broker.trust.material import key_id
from broker.trust.node import _new_keys
from broker.trust.request import build_request, fingerprint_of, read_request
from tests.broker._pki import T0, FakeClock, load_store, weak_keystore

STORE = load_store()


def _request(tmp_path: Path, *, sign_new: bool = True, extra: list | None = None) -> bytes:  # type: ignore[type-arg]
    ks = weak_keystore(tmp_path / "keys")
    keys = _new_keys(ks, "soc-fr", "x25519", FakeClock())
    signers = [(keys[0].key_id, ks.signing_key("soc-fr", keys[0].key_id))] if sign_new else []
    return build_request(
        STORE,
        kind="register",
        participant="soc-fr",
        created=T0,
        facts="{}",
        kem="x25519",
        keys=keys,
        signers=[*signers, *(extra or [])],
    )


def test_a_request_verifies_and_names_its_signers(tmp_path: Path) -> None:
    data = _request(tmp_path)
    req = read_request(STORE, data)
    assert req.kind == "register" and req.participant == "soc-fr"
    assert req.signed_by == {k.key_id for k in req.new_signing_keys()}
    assert req.fingerprint == fingerprint_of(data) and len(req.fingerprint.split()) == 8


def test_without_the_new_key_s_signature_there_is_no_proof_of_possession(tmp_path: Path) -> None:
    with pytest.raises(BadSignature, match="proof of possession"):
        read_request(STORE, _request(tmp_path, sign_new=False))


def test_a_signature_by_an_unknown_key_refuses_the_request(tmp_path: Path) -> None:
    stranger = ed25519.Ed25519PrivateKey.generate()
    kid = key_id("ed25519", stranger.public_key().public_bytes_raw())
    data = _request(tmp_path, extra=[(kid, stranger)])
    with pytest.raises(BadSignature, match="neither"):
        read_request(STORE, data)
    # the same key known to the registry for this participant: accepted, and named
    known = {kid: stranger.public_key().public_bytes_raw()}
    assert kid in read_request(STORE, data, known).signed_by


def test_a_changed_request_fails_its_signature(tmp_path: Path) -> None:
    _, rec = STORE.decode(_request(tmp_path), expected="RegistrationRequest")
    rec["facts"] = '{"role":"operational"}'
    with pytest.raises(BadSignature, match="does not verify"):
        read_request(STORE, STORE.encode("RegistrationRequest", rec))


def test_a_revocation_needs_a_reason() -> None:
    with pytest.raises(RegistryError, match="reason"):
        build_request(
            STORE,
            kind="revoke",
            participant="x",
            created=T0,
            facts="{}",
            kem="x25519",
            keys=(),
            signers=(),
        )
