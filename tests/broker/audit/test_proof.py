"""The offline proof bundle (no Kafka): what it needs to hold for `check_bundle` to accept it,
checked against a real registry snapshot of the test federation."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit import (
    AuditKeys,
    AuditRecord,
    Prover,
    Verifier,
    check_bundle,
    cosign,
    sign_checkpoint,
    write_bundle,
)
from broker.audit._codec import encode_checkpoint, encode_leaf
from broker.audit.topic import TopicRecord
from broker.audit.witness import keys_and_validity
from broker.clock import utc_now
from broker.errors import AuditVerificationError
from broker.merkle import ProofTree, leaf_hash
from tests.broker._pki import Pki, make_pki

EP = "cert-eu/publish"
KEYS = AuditKeys(bytes(range(32)))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", participants=["cert-eu", "enisa", "europol-ec3"])


def _signer(pki: Pki, org: str) -> ed25519.Ed25519PrivateKey:
    kid = pki.keyring().current_signing_key_id(org, utc_now())
    return pki.keystores[org].signing_key(org, kid)


def _bundle(pki: Pki, witnesses: tuple[str, ...], *, signed_at=None) -> str:  # type: ignore[no-untyped-def]
    store = pki.store
    values: list[bytes] = []
    previous = b""
    for i in range(6):
        rec = AuditRecord(
            action="publish",
            organisation="enisa",
            message_id=f"m-{i}",
            decision="allow",
            decision_id=f"00000000-0000-4000-8000-00000000000{i}",
        )
        data = encode_leaf(store, EP, i, previous, rec, KEYS.require(EP))
        previous = leaf_hash(data)
        values.append(data)
    tree = ProofTree(leaf_hash(v) for v in values)
    cp = sign_checkpoint(_signer(pki, "cert-eu"), EP, 6, tree.root(), signed_at)
    cp = cp.with_signatures(
        cosign(_signer(pki, w), f"{w}/witness", cp.checkpoint) for w in witnesses
    )
    resolve, valid = keys_and_validity(pki.keyring())
    v = Verifier(store, resolve, valid, audit_keys=KEYS)
    v.checkpoint(TopicRecord(EP, encode_checkpoint(store, cp, 0, []), 0, 0))
    v.cosigned(cp)
    prover = Prover(store, "00000000-0000-4000-8000-000000000003", KEYS, v.candidates)
    for offset, value in enumerate(values):
        raw = TopicRecord(EP, value, 0, offset)
        v.record(raw)
        prover.record(raw)
    proof = prover.result(v.finish().report(EP), resolve)
    assert proof.verified
    authority = serialization.load_pem_public_key(pki.authority.public_key_file.read_bytes())
    assert isinstance(authority, ed25519.Ed25519PublicKey)
    return write_bundle(proof, pki.export(), authority.public_bytes_raw())


def test_a_witnessed_bundle_checks_out(pki: Pki) -> None:
    checked = check_bundle(pki.store, _bundle(pki, ("enisa", "europol-ec3")), min_witnesses=2)
    assert checked.record.message_id == "m-3" and checked.leaf_index == 3
    assert [w for w, _ in checked.witnesses] == ["enisa/witness", "europol-ec3/witness"]
    assert checked.authority_from_bundle
    bundle = json.loads(_bundle(pki, ()))
    assert set(bundle) >= {"leaf", "leaf_key", "inclusion_proof", "checkpoint",
                           "registry_snapshot", "authority_key"}  # fmt: skip


def test_witnesses_are_counted_only_if_they_are_others(pki: Pki) -> None:
    with pytest.raises(AuditVerificationError, match="cosigned by 0 witness"):
        check_bundle(pki.store, _bundle(pki, ("cert-eu",)))  # the log's own participant
    with pytest.raises(AuditVerificationError, match="2 required"):
        check_bundle(pki.store, _bundle(pki, ("enisa",)), min_witnesses=2)
    assert check_bundle(pki.store, _bundle(pki, ()), min_witnesses=0).witnesses == ()


def test_a_checkpoint_signed_after_its_key_was_revoked_is_refused(pki: Pki) -> None:
    revoked = utc_now() - timedelta(hours=1)
    text = _bundle(pki, ("enisa",))  # signed now
    pki.revoke("cert-eu", "compromised", at=revoked)
    data = json.loads(text)
    data["registry_snapshot"] = base64.b64encode(pki.export()).decode()
    with pytest.raises(AuditVerificationError, match="not valid when it signed"):
        check_bundle(pki.store, json.dumps(data))


def test_the_leaf_key_opens_that_leaf_only(pki: Pki) -> None:
    data = json.loads(_bundle(pki, ("enisa",)))
    other = json.loads(_bundle(pki, ("enisa",)))  # the same log written again: other salts
    data["leaf_key"] = other["leaf_key"]
    with pytest.raises(AuditVerificationError, match="does not open"):
        check_bundle(pki.store, json.dumps(data))
