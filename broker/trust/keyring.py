"""Who holds which public key, and when it was good: signed ParticipantRecords.

The registry authority signs one ParticipantRecord per participant (its
attributes from participants.yaml, its public keys with validity, rotation and
revocation times). The signed Avro single-object bytes are the unit kept on
disk under $JCU_HOME/registry/<participant>.avro and, later, published on the
compacted `jcu.registry` topic. The authority's public key
($JCU_HOME/registry/authority.pem) is the trust anchor.

Validity is judged at the time a message says it was created:
- rotation sets `retired` on the old key: messages created before still verify,
  messages created after are refused (ExpiredKey);
- revocation sets `revoked`: messages created at or after it are refused
  (RevokedKey); earlier ones still verify. The envelope bounds how far back a
  message may claim to be created (its maximum validity), which bounds what a
  thief of a revoked key can still backdate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.clock import to_millis
from broker.config import Settings
from broker.errors import (
    BadSignature,
    ExpiredKey,
    KeystoreError,
    RegistryError,
    RevokedKey,
    UnknownKey,
    WrongSender,
)
from broker.schemas import SchemaStore
from broker.trust.material import (
    SIGNING_ALGORITHM,
    KemAlgorithm,
    KemPublicKey,
    key_id,
    load_ed25519_public,
    load_kem_public,
)

RECORD_VERSION = 1
#: Domain separation: an authority signature over a record can never be taken
#: for a signature over anything else (and vice versa).
RECORD_SIGNATURE_DOMAIN = b"jcu-broker/participant-record/v1\x00"
AUTHORITY_PUBLIC_FILE = "authority.pem"
Purpose = Literal["signing", "kem"]


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

    def check_at(self, owner: str, t: datetime) -> None:
        """Raise RevokedKey or ExpiredKey unless the key may be used for something made at `t`."""
        t = to_millis(t)
        label = f"key {self.key_id} of {owner}"
        if self.revoked is not None and t >= self.revoked:
            reason = f" ({self.revocation_reason})" if self.revocation_reason else ""
            raise RevokedKey(f"{label} was revoked at {self.revoked.isoformat()}{reason}")
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


def _record_dict(entry: ParticipantKeys, authority_key_id: str, signature: bytes) -> dict[str, Any]:
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
        "keys": [
            {
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
            for k in entry.keys
        ],
        "authority_key_id": authority_key_id,
        "signature": signature,
    }


def _entry_from_dict(rec: Mapping[str, Any]) -> ParticipantKeys:
    keys = []
    for k in rec["keys"]:
        info = KeyInfo(
            key_id=k["key_id"],
            purpose="signing" if k["purpose"] == "SIGNING" else "kem",
            algorithm=k["algorithm"],
            public_key=bytes(k["public_key"]),
            not_before=k["not_before"],
            not_after=k["not_after"],
            retired=k["retired"],
            revoked=k["revoked"],
            revocation_reason=k["revocation_reason"],
        )
        if key_id(info.algorithm, info.public_key) != info.key_id:
            raise RegistryError(
                f"record of {rec['participant']}: key id {info.key_id} does not match its key"
            )
        keys.append(info)
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
        keys=tuple(keys),
    )


def sign_record(
    store: SchemaStore,
    entry: ParticipantKeys,
    authority: ed25519.Ed25519PrivateKey,
) -> bytes:
    """The signed ParticipantRecord bytes (Avro single-object) for `entry`."""
    authority_kid = key_id(SIGNING_ALGORITHM, authority.public_key().public_bytes_raw())
    unsigned = store.encode("ParticipantRecord", _record_dict(entry, authority_kid, b""))
    signature = authority.sign(RECORD_SIGNATURE_DOMAIN + unsigned)
    return store.encode("ParticipantRecord", _record_dict(entry, authority_kid, signature))


def verify_record(
    store: SchemaStore, data: bytes, authority: ed25519.Ed25519PublicKey
) -> ParticipantKeys:
    """Check the authority's signature on record bytes and return their content."""
    _, rec = store.decode(data, expected="ParticipantRecord")
    if rec["version"] != RECORD_VERSION:
        raise RegistryError(f"participant record version {rec['version']} is not supported")
    authority_kid = key_id(SIGNING_ALGORITHM, authority.public_bytes_raw())
    if rec["authority_key_id"] != authority_kid:
        raise UnknownKey(
            f"record of {rec['participant']} is signed by authority key "
            f"{rec['authority_key_id']}, not the trusted {authority_kid}"
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


def load_authority_public(registry_dir: Path) -> ed25519.Ed25519PublicKey:
    path = Path(registry_dir) / AUTHORITY_PUBLIC_FILE
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise KeystoreError(f"no registry authority key at {path}; run `jcu init`") from None
    except ValueError:
        raise KeystoreError(f"{path} is not a PEM public key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise KeystoreError(f"{path} is not an Ed25519 public key")
    return key


def signed_records(registry_dir: Path) -> dict[str, bytes]:
    """participant id -> signed ParticipantRecord bytes: what `jcu.registry` carries (key = id)."""
    return {p.stem: p.read_bytes() for p in sorted(Path(registry_dir).glob("*.avro"))}


def registry_dir(settings: Settings) -> Path:
    """Where the signed ParticipantRecords and the authority's public key live."""
    return settings.home / "registry"


class Keyring:
    """Answers which public key of whom may be used at a given time. Built from verified records."""

    def __init__(self, entries: Iterable[ParticipantKeys]) -> None:
        self._entries: dict[str, ParticipantKeys] = {e.participant: e for e in entries}
        self._owner_of: dict[str, tuple[str, KeyInfo]] = {}
        self._parsed: dict[str, Any] = {}  # key id -> public key object (parsing is not free)
        for e in self._entries.values():
            for k in e.keys:
                self._owner_of[k.key_id] = (e.participant, k)

    @classmethod
    def load(cls, registry_dir: Path, store: SchemaStore) -> Keyring:
        """Verify every `<participant>.avro` in `registry_dir` against the authority key there."""
        authority = load_authority_public(registry_dir)
        entries = []
        for participant, data in signed_records(registry_dir).items():
            entry = verify_record(store, data, authority)
            if entry.participant != participant:
                raise RegistryError(
                    f"{participant}.avro in {registry_dir} holds the record of {entry.participant}"
                )
            entries.append(entry)
        return cls(entries)

    @classmethod
    def from_records(
        cls, store: SchemaStore, authority: ed25519.Ed25519PublicKey, records: Iterable[bytes]
    ) -> Keyring:
        """A keyring from signed record bytes (as read from `jcu.registry`); highest serial wins."""
        best: dict[str, ParticipantKeys] = {}
        for data in records:
            entry = verify_record(store, data, authority)
            held = best.get(entry.participant)
            if held is None or entry.serial > held.serial:
                best[entry.participant] = entry
        return cls(best.values())

    def update(self, entry: ParticipantKeys) -> bool:
        """Take a newer verified record of a participant (a higher serial); True if taken.

        Running enforcement points apply rotations and revocations this way
        (`broker.trust.feed`) without a restart. Older or equal serials
        are ignored, so a replayed old record cannot undo a revocation.
        """
        held = self._entries.get(entry.participant)
        if held is not None and entry.serial <= held.serial:
            return False
        if held is not None:
            for k in held.keys:
                self._owner_of.pop(k.key_id, None)
        self._entries[entry.participant] = entry
        for k in entry.keys:
            self._owner_of[k.key_id] = (entry.participant, k)
        return True

    def participants(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __contains__(self, participant: object) -> bool:
        return participant in self._entries

    def entry(self, participant: str) -> ParticipantKeys:
        try:
            return self._entries[participant]
        except KeyError:
            raise UnknownKey(f"no keys registered for participant {participant!r}") from None

    def community_of(self, participant: str) -> str:
        return self.entry(participant).community

    def signing_key(self, sender: str, kid: str, at: datetime) -> ed25519.Ed25519PublicKey:
        """The public key `kid` if it is `sender`'s signing key and valid at `at`.

        Raises UnknownKey, WrongSender, RevokedKey or ExpiredKey.
        """
        found = self._owner_of.get(kid)
        if found is None:
            raise UnknownKey(f"unknown signing key {kid!r}")
        owner, info = found
        if owner != sender:
            raise WrongSender(f"key {kid} belongs to {owner}, not to the named sender {sender}")
        if info.purpose != "signing" or info.algorithm != SIGNING_ALGORITHM:
            raise UnknownKey(f"key {kid} of {owner} is not an Ed25519 signing key")
        info.check_at(owner, at)
        key = self._parsed.get(kid)
        if key is None:
            key = self._parsed[kid] = load_ed25519_public(info.public_key)
        assert isinstance(key, ed25519.Ed25519PublicKey)
        return key

    def current_signing_key_id(self, participant: str, at: datetime) -> str:
        info = self.entry(participant).current("signing", at)
        if info is None:
            raise KeystoreError(
                f"{participant} has no usable signing key; run `jcu keys rotate {participant}`"
            )
        return info.key_id

    def can_receive(self, participant: str, at: datetime) -> bool:
        """Whether `participant` has a KEM key to wrap for at `at` (`recipient_key` would
        give one): none when all are revoked or expired, or it has no keys at all."""
        entry = self._entries.get(participant)
        return entry is not None and entry.current("kem", at) is not None

    def recipient_key(self, participant: str, at: datetime) -> RecipientKey:
        """The KEM key to wrap content keys for `participant` at time `at`."""
        entry = self.entry(participant)
        info = entry.current("kem", at)
        if info is None:
            raise KeystoreError(
                f"{participant} has no usable {entry.kem} key; run `jcu keys rotate {participant}`"
            )
        cached = self._parsed.get(info.key_id)
        if not isinstance(cached, RecipientKey):
            cached = RecipientKey(
                participant=participant,
                key_id=info.key_id,
                kem=entry.kem,
                public_key=load_kem_public(info.algorithm, info.public_key),
            )
            self._parsed[info.key_id] = cached
        return cached
