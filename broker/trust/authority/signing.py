"""The authority's signatures: records, snapshots and its own key transitions.

Only the registry authority runs this; a node only verifies
(`broker.trust.records`, `broker.trust.snapshot`).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.schemas import SchemaStore
from broker.trust.material import SIGNING_ALGORITHM, key_id
from broker.trust.records import RECORD_SIGNATURE_DOMAIN, ParticipantKeys, record_dict
from broker.trust.snapshot import Transition, unsigned_message


def _kid(key: ed25519.Ed25519PrivateKey) -> str:
    return key_id(SIGNING_ALGORITHM, key.public_key().public_bytes_raw())


def sign_record(
    store: SchemaStore, entry: ParticipantKeys, key: ed25519.Ed25519PrivateKey
) -> bytes:
    """The signed ParticipantRecord bytes (Avro single-object) for `entry`."""
    unsigned = store.encode("ParticipantRecord", record_dict(entry, _kid(key), b""))
    signature = key.sign(RECORD_SIGNATURE_DOMAIN + unsigned)
    return store.encode("ParticipantRecord", record_dict(entry, _kid(key), signature))


def sign_snapshot(store: SchemaStore, rec: dict[str, Any], key: ed25519.Ed25519PrivateKey) -> bytes:
    """The signed RegistrySnapshot bytes for `rec` (its signer and signature set here)."""
    rec = {**rec, "authority_key_id": _kid(key), "signature": b""}
    rec["signature"] = key.sign(unsigned_message(store, rec))
    return store.encode("RegistrySnapshot", rec)


def sign_transition(old: ed25519.Ed25519PrivateKey, new_public: bytes, epoch: int) -> Transition:
    """The old key's statement that `new_public` signs for the authority from `epoch` on."""
    unsigned = Transition(_kid(old), key_id(SIGNING_ALGORITHM, new_public), new_public, epoch, b"")
    return Transition(
        unsigned.from_key_id,
        unsigned.key_id,
        new_public,
        epoch,
        old.sign(unsigned.message()),
    )
