"""Signed participant records: who holds which public key, and when it was good.

The registry authority signs one ParticipantRecord per participant (its
attributes, its public keys with validity, rotation and revocation times).
The records travel inside signed registry snapshots (`broker.trust.snapshot`);
each is also signed on its own, so one record can be checked without the rest.

Validity is judged at the time a message says it was created, and, where the
broker stamped it, at the time the broker appended it:
- rotation sets `retired` on the old key: messages created before still verify,
  messages created after are refused (ExpiredKey);
- revocation sets `revoked`: messages created at or after it are refused
  (RevokedKey). A revocation whose reason is `compromised` also refuses every
  record the broker appended at or after it, whatever its signed `created`: a
  thief cannot backdate past the broker's clock. A `superseded` key still
  verifies what was created before its revocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.clock import to_millis
from broker.errors import BadSignature, ExpiredKey, RegistryError, RevokedKey, UnknownKey
from broker.schemas import SchemaStore
from broker.trust.material import SIGNING_ALGORITHM, KemAlgorithm, KemPublicKey, key_id

RECORD_VERSION = 1
#: Domain separation: an authority signature over a record can never be taken
#: for a signature over anything else (and vice versa).
RECORD_SIGNATURE_DOMAIN = b"jcu-broker/participant-record/v1\x00"
Purpose = Literal["signing", "kem"]
#: Why a key was revoked. `compromised` bites on broker append time as well.
REVOCATION_REASONS: tuple[str, ...] = ("compromised", "superseded")
COMPROMISED = "compromised"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One public key of a participant and the period it may be used in."""

    key_id: str
    purpose: Purpose
    algorithm: str
    public_key: bytes
    not_before: datetime
    not_after: datetime
    retired: datetime | None = None
    revoked: datetime | None = None
    revocation_reason: str | None = None

    def usable_at(self, t: datetime) -> bool:
        t = to_millis(t)
        return (
            self.not_before <= t < self.not_after
            and (self.retired is None or t < self.retired)
            and (self.revoked is None or t < self.revoked)
        )

    @property
    def compromised(self) -> bool:
        return self.revoked is not None and self.revocation_reason == COMPROMISED

    def check_at(self, owner: str, t: datetime, appended: datetime | None = None) -> None:
        """Raise RevokedKey or ExpiredKey unless the key may be used for something made at
        `t` (and, if the broker stamped it, appended at `appended`)."""
        t = to_millis(t)
        label = f"key {self.key_id} of {owner}"
        if self.revoked is not None and t >= self.revoked:
            reason = f" ({self.revocation_reason})" if self.revocation_reason else ""
            raise RevokedKey(f"{label} was revoked at {self.revoked.isoformat()}{reason}")
        if (
            self.revoked is not None
            and self.revocation_reason == COMPROMISED
            and appended is not None
            and to_millis(appended) >= self.revoked
        ):
            raise RevokedKey(
                f"{label} was revoked as compromised at {self.revoked.isoformat()}; this "
                f"record was appended at {to_millis(appended).isoformat()}, after it"
            )
        if t < self.not_before:
            raise ExpiredKey(f"{label} is not valid before {self.not_before.isoformat()}")
        if t >= self.not_after:
            raise ExpiredKey(f"{label} expired at {self.not_after.isoformat()}")
        if self.retired is not None and t >= self.retired:
            raise ExpiredKey(f"{label} was retired by rotation at {self.retired.isoformat()}")

    @property
    def status(self) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.retired is not None:
            return "retired"
        return "active"


@dataclass(frozen=True, slots=True)
class ParticipantKeys:
    """The content of one ParticipantRecord (without the authority signature)."""

    participant: str
    name: str
    community: str
    role: str
    status: str
    kem: KemAlgorithm
    serial: int
    issued: datetime
    keys: tuple[KeyInfo, ...] = field(default=())

    def key(self, kid: str) -> KeyInfo | None:
        return next((k for k in self.keys if k.key_id == kid), None)

    def current(self, purpose: Purpose, at: datetime) -> KeyInfo | None:
        """The newest key of `purpose` usable at `at` (for the KEM: of the community's KEM)."""
        usable = [
            k
            for k in self.keys
            if k.purpose == purpose
            and k.usable_at(at)
            and (purpose == "signing" or k.algorithm == self.kem)
        ]
        return max(usable, key=lambda k: k.not_before, default=None)

    def with_changes(self, *, issued: datetime, **changes: Any) -> ParticipantKeys:
        """A copy with `changes`, the next serial and a new issue time."""
        return replace(self, serial=self.serial + 1, issued=to_millis(issued), **changes)


@dataclass(frozen=True, slots=True)
class RecipientKey:
    """What the sender needs to wrap a content key for one recipient."""

    participant: str
    key_id: str
    kem: KemAlgorithm
    public_key: KemPublicKey


def key_dict(k: KeyInfo) -> dict[str, Any]:
    """A KeyInfo as the Avro PublicKey record."""
    return {
        "key_id": k.key_id,
        "purpose": k.purpose.upper(),
        "algorithm": k.algorithm,
        "public_key": k.public_key,
        "not_before": k.not_before,
        "not_after": k.not_after,
        "retired": k.retired,
        "revoked": k.revoked,
        "revocation_reason": k.revocation_reason,
    }


def key_from_dict(k: Mapping[str, Any], owner: str) -> KeyInfo:
    """An Avro PublicKey record as a KeyInfo; its id must be the id of its key."""
    info = KeyInfo(
        key_id=k["key_id"],
        purpose="signing" if k["purpose"] == "SIGNING" else "kem",
        algorithm=k["algorithm"],
        public_key=bytes(k["public_key"]),
        not_before=k["not_before"],
        not_after=k["not_after"],
        retired=k.get("retired"),
        revoked=k.get("revoked"),
        revocation_reason=k.get("revocation_reason"),
    )
    if key_id(info.algorithm, info.public_key) != info.key_id:
        raise RegistryError(f"key of {owner}: key id {info.key_id} does not match its key")
    return info


def record_dict(entry: ParticipantKeys, authority_key_id: str, signature: bytes) -> dict[str, Any]:
    return {
        "version": RECORD_VERSION,
        "participant": entry.participant,
        "name": entry.name,
        "community": entry.community,
        "role": entry.role,
        "status": entry.status,
        "kem": entry.kem,
        "serial": entry.serial,
        "issued": entry.issued,
        "keys": [key_dict(k) for k in entry.keys],
        "authority_key_id": authority_key_id,
        "signature": signature,
    }


def _entry_from_dict(rec: Mapping[str, Any]) -> ParticipantKeys:
    keys = tuple(key_from_dict(k, rec["participant"]) for k in rec["keys"])
    kem = rec["kem"]
    if kem not in ("x25519", "mlkem768x25519"):
        raise RegistryError(f"record of {rec['participant']}: unknown KEM {kem!r}")
    return ParticipantKeys(
        participant=rec["participant"],
        name=rec["name"],
        community=rec["community"],
        role=rec["role"],
        status=rec["status"],
        kem=kem,
        serial=rec["serial"],
        issued=rec["issued"],
        keys=keys,
    )


def authority_key_id(authority: ed25519.Ed25519PublicKey) -> str:
    return key_id(SIGNING_ALGORITHM, authority.public_bytes_raw())


def verify_record(
    store: SchemaStore, data: bytes, authority: ed25519.Ed25519PublicKey
) -> ParticipantKeys:
    """Check the authority's signature on record bytes and return their content."""
    _, rec = store.decode(data, expected="ParticipantRecord")
    if rec["version"] != RECORD_VERSION:
        raise RegistryError(f"participant record version {rec['version']} is not supported")
    expected = authority_key_id(authority)
    if rec["authority_key_id"] != expected:
        raise UnknownKey(
            f"record of {rec['participant']} is signed by key {rec['authority_key_id']}, "
            f"not by the registry authority's {expected}"
        )
    signature = bytes(rec["signature"])
    rec["signature"] = b""
    unsigned = store.encode("ParticipantRecord", rec)
    try:
        authority.verify(signature, RECORD_SIGNATURE_DOMAIN + unsigned)
    except InvalidSignature:
        raise BadSignature(
            f"record of {rec['participant']}: registry authority signature does not verify"
        ) from None
    return _entry_from_dict(rec)
