"""Registration requests: what a node asks of the registry authority, signed by its own keys.

A node makes its keys itself and never shows a private key to anyone; it
sends the authority a request carrying the new public keys and the registry
facts it claims, signed by every new signing key it carries (proof that it
holds them). A rotation or a revocation is also signed by a key the registry
already holds for the organisation, which is how the authority knows it comes
from the organisation and not from someone who merely knows its name. A first
registration has no such key: the authority approves it only against the
fingerprint the organisation gave it over another channel (telephone, letter).

KEM keys cannot sign. They are bound to the organisation by the signatures
over the request, and HPKE binds each wrapped content key to the recipient id
and key id (see docs/envelope.md), so claiming someone else's KEM key yields
nothing: only its holder can open what is wrapped for it, and what is wrapped
for it names the claimant. The authority also refuses a key id that any
participant ever registered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.clock import to_millis
from broker.errors import BadSignature, MalformedRecord, RegistryError
from broker.schemas import SchemaStore
from broker.trust.material import SIGNING_ALGORITHM, key_id, load_ed25519_public
from broker.trust.records import REVOCATION_REASONS, KeyInfo, key_dict, key_from_dict

REQUEST_VERSION = 1
REQUEST_DOMAIN = b"jcu-broker/registration-request/v1\x00"
#: File name extension of request files.
SUFFIX = ".jcureq"
#: An authority refuses a request older than this (a replayed old request).
MAX_REQUEST_AGE = timedelta(days=30)
Kind = Literal["register", "rotate", "revoke"]


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    """A request whose signatures verified (each by the key it names), and its bytes."""

    kind: Kind
    participant: str
    created: datetime
    facts: str
    kem: str
    keys: tuple[KeyInfo, ...]
    revocation_reason: str | None
    #: Key ids of the signing keys whose signatures verified.
    signed_by: frozenset[str]
    data: bytes

    @property
    def fingerprint(self) -> str:
        """What the organisation reads out to the authority: SHA-256 of the request file,
        first 16 bytes, in groups of four hex digits."""
        return fingerprint_of(self.data)

    def new_signing_keys(self) -> tuple[KeyInfo, ...]:
        return tuple(k for k in self.keys if k.purpose == "signing")


def fingerprint_of(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


def _unsigned(store: SchemaStore, rec: Mapping[str, Any]) -> bytes:
    return REQUEST_DOMAIN + store.encode("RegistrationRequest", {**rec, "signatures": []})


def build_request(
    store: SchemaStore,
    *,
    kind: Kind,
    participant: str,
    created: datetime,
    facts: str,
    kem: str,
    keys: Iterable[KeyInfo],
    signers: Iterable[tuple[str, ed25519.Ed25519PrivateKey]],
    revocation_reason: str | None = None,
) -> bytes:
    """The request's bytes, signed by every (key id, private key) in `signers`."""
    if kind == "revoke" and revocation_reason not in REVOCATION_REASONS:
        raise RegistryError(f"a revocation needs a reason: one of {', '.join(REVOCATION_REASONS)}")
    rec: dict[str, Any] = {
        "version": REQUEST_VERSION,
        "kind": kind.upper(),
        "participant": participant,
        "created": to_millis(created),
        "facts": facts,
        "kem": kem,
        "keys": [key_dict(k) for k in keys],
        "revocation_reason": revocation_reason,
        "signatures": [],
    }
    message = _unsigned(store, rec)
    rec["signatures"] = [
        {"key_id": kid, "signature": private.sign(message)} for kid, private in signers
    ]
    return store.encode("RegistrationRequest", rec)


def claimed_participant(store: SchemaStore, data: bytes) -> str:
    """Who a request says it is from, UNVERIFIED: only to look up its registered keys."""
    _, rec = store.decode(data, expected="RegistrationRequest")
    return str(rec["participant"])


def read_request(
    store: SchemaStore,
    data: bytes,
    known_keys: Mapping[str, bytes] | None = None,
) -> RegistrationRequest:
    """Decode a request and check every signature it carries.

    A signature names a key id: a new signing key in the request itself, or one
    in `known_keys` (key id -> raw Ed25519 public key, the registry's keys of this
    participant). A signature by any other key, or one that does not verify, refuses
    the whole request; each new signing key must have signed it.
    """
    _, rec = store.decode(data, expected="RegistrationRequest")
    if rec["version"] != REQUEST_VERSION:
        raise MalformedRecord(f"registration request version {rec['version']} is not supported")
    participant = rec["participant"]
    keys = tuple(key_from_dict(k, participant) for k in rec["keys"])
    verifiers = {
        k.key_id: k.public_key
        for k in keys
        if k.purpose == "signing" and k.algorithm == SIGNING_ALGORITHM
    }
    for kid, known in (known_keys or {}).items():
        verifiers.setdefault(kid, known)
    message = _unsigned(store, rec)
    signed: set[str] = set()
    for sig in rec["signatures"]:
        raw = verifiers.get(sig["key_id"])
        if raw is None:
            raise BadSignature(
                f"request of {participant} is signed by key {sig['key_id']}, which is neither "
                "a key it carries nor one the registry holds for it"
            )
        if key_id(SIGNING_ALGORITHM, raw) != sig["key_id"]:
            raise MalformedRecord(f"request of {participant}: key id {sig['key_id']} is wrong")
        try:
            load_ed25519_public(raw).verify(bytes(sig["signature"]), message)
        except InvalidSignature:
            raise BadSignature(
                f"request of {participant}: the signature by key {sig['key_id']} does not verify"
            ) from None
        signed.add(sig["key_id"])
    unsigned_new = [k.key_id for k in keys if k.purpose == "signing" and k.key_id not in signed]
    if unsigned_new:
        raise BadSignature(
            f"request of {participant}: new signing key {', '.join(unsigned_new)} did not sign "
            "it (no proof of possession)"
        )
    return RegistrationRequest(
        kind=rec["kind"].lower(),
        participant=participant,
        created=rec["created"],
        facts=rec["facts"],
        kem=rec["kem"],
        keys=keys,
        revocation_reason=rec["revocation_reason"],
        signed_by=frozenset(signed),
        data=bytes(data),
    )
