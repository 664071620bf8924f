"""Registry snapshots: the whole registry at one epoch, signed by the registry authority.

A snapshot carries the participants.yaml facts, every signed ParticipantRecord
and the hash of the policy bundle the authority approved them with. Anyone may
carry one (a file, the `jcu.registry` topic); a node believes it only if the
authority it trusts signed it. The authority may move to a new signing key: each
move is a transition signed by the old key, and every snapshot carries the
chain of them, so a node that trusts any key on the chain can follow to the
newest. Verification here is pure (no state): which epochs a node has already
seen is `broker.trust.state`'s business.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.errors import BadSignature, MalformedRecord, RegistryError, UnknownKey
from broker.schemas import SchemaStore
from broker.trust.material import SIGNING_ALGORITHM, key_id, load_ed25519_public
from broker.trust.records import ParticipantKeys, verify_record
from broker.trust.registry import Registry, parse_registry

SNAPSHOT_VERSION = 1
SNAPSHOT_DOMAIN = b"jcu-broker/registry-snapshot/v1\x00"
TRANSITION_DOMAIN = b"jcu-broker/authority-key-transition/v1\x00"
#: The record key of snapshots on `jcu.registry`: compaction keeps the newest.
TOPIC_KEY = b"snapshot"
#: File name extension of snapshot files.
SUFFIX = ".jcureg"


@dataclass(frozen=True, slots=True)
class Transition:
    """The authority's move from key `from_key_id` to `public_key`, from `epoch` on."""

    from_key_id: str
    key_id: str
    public_key: bytes
    epoch: int
    signature: bytes

    def message(self) -> bytes:
        return (
            TRANSITION_DOMAIN
            + self.from_key_id.encode()
            + b"\x00"
            + self.key_id.encode()
            + b"\x00"
            + self.public_key
            + struct.pack(">Q", self.epoch)
        )

    def to_avro(self) -> dict[str, Any]:
        return {
            "from_key_id": self.from_key_id,
            "key_id": self.key_id,
            "public_key": self.public_key,
            "epoch": self.epoch,
            "signature": self.signature,
        }

    @classmethod
    def from_avro(cls, rec: Mapping[str, Any]) -> Transition:
        return cls(
            rec["from_key_id"],
            rec["key_id"],
            bytes(rec["public_key"]),
            int(rec["epoch"]),
            bytes(rec["signature"]),
        )


@dataclass(frozen=True, slots=True)
class VerifiedSnapshot:
    """A snapshot whose signature, chain and records verified; what a node acts on."""

    epoch: int
    issued: datetime
    registry: Registry
    entries: Mapping[str, ParticipantKeys]
    policy_bundle_hash: str
    authority_key_id: str
    authority_key: ed25519.Ed25519PublicKey
    data: bytes

    @property
    def digest(self) -> str:
        """SHA-256 of the snapshot bytes: two snapshots of one epoch differ iff this does."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def serials(self) -> dict[str, int]:
        return {p: e.serial for p, e in self.entries.items()}


def canonical_facts(document: Any) -> str:
    """The registry source as the canonical JSON a snapshot carries."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)


def unsigned_message(store: SchemaStore, rec: Mapping[str, Any]) -> bytes:
    """What the authority signs: the domain tag and `rec` encoded with an empty signature."""
    return SNAPSHOT_DOMAIN + store.encode("RegistrySnapshot", {**rec, "signature": b""})


def _trusted_keys(
    anchor: ed25519.Ed25519PublicKey, chain: Sequence[Transition]
) -> dict[str, ed25519.Ed25519PublicKey]:
    """The anchor and every key the chain leads to from it, each move signed by a key
    already trusted. Moves from keys the anchor does not lead to are ignored."""
    trusted = {key_id(SIGNING_ALGORITHM, anchor.public_bytes_raw()): anchor}
    for t in chain:
        old = trusted.get(t.from_key_id)
        if old is None:
            continue
        if key_id(SIGNING_ALGORITHM, t.public_key) != t.key_id:
            raise MalformedRecord(f"authority key transition names {t.key_id} for another key")
        try:
            old.verify(t.signature, t.message())
        except InvalidSignature:
            raise BadSignature(
                f"authority key transition {t.from_key_id} -> {t.key_id} does not verify"
            ) from None
        trusted[t.key_id] = load_ed25519_public(t.public_key)
    return trusted


def verify_snapshot(
    store: SchemaStore, data: bytes, anchor: ed25519.Ed25519PublicKey
) -> VerifiedSnapshot:
    """Check a snapshot against the authority key a node trusts; return what it says.

    Refuses (with a `Rejected` subclass, whose `reason` the caller logs): bytes
    that are not a snapshot, a signer the anchor does not lead to (UnknownKey:
    e.g. a participant's key), a signature that does not verify (BadSignature:
    a forgery or a tampered copy), records not signed by the same authority key,
    and facts or records that contradict each other.
    """
    _, rec = store.decode(data, expected="RegistrySnapshot")
    if rec["version"] != SNAPSHOT_VERSION:
        raise MalformedRecord(f"registry snapshot version {rec['version']} is not supported")
    chain = [Transition.from_avro(t) for t in rec["authority_chain"]]
    trusted = _trusted_keys(anchor, chain)
    signer_id = rec["authority_key_id"]
    signer = trusted.get(signer_id)
    if signer is None:
        raise UnknownKey(
            f"registry snapshot epoch {rec['epoch']} is signed by key {signer_id}, which is not "
            f"the registry authority this node trusts ({', '.join(sorted(trusted))})"
        )
    try:
        signer.verify(bytes(rec["signature"]), unsigned_message(store, rec))
    except InvalidSignature:
        raise BadSignature(
            f"registry snapshot epoch {rec['epoch']}: the authority's signature does not verify"
        ) from None
    try:
        document = json.loads(rec["facts"])
    except ValueError:
        raise MalformedRecord("registry snapshot facts are not JSON") from None
    try:
        registry = parse_registry(document, source=f"registry snapshot epoch {rec['epoch']}")
    except RegistryError as exc:
        raise MalformedRecord(str(exc)) from None
    entries: dict[str, ParticipantKeys] = {}
    owners: dict[str, str] = {}
    for raw in rec["records"]:
        entry = verify_record(store, bytes(raw), signer)
        _check_entry(entry, registry, entries, owners)
        entries[entry.participant] = entry
    return VerifiedSnapshot(
        epoch=int(rec["epoch"]),
        issued=rec["issued"],
        registry=registry,
        entries=entries,
        policy_bundle_hash=rec["policy_bundle_hash"],
        authority_key_id=signer_id,
        authority_key=signer,
        data=bytes(data),
    )


def _check_entry(
    entry: ParticipantKeys,
    registry: Registry,
    entries: Mapping[str, ParticipantKeys],
    owners: dict[str, str],
) -> None:
    """A record must be of a participant the facts name, agree with them, and hold keys
    no other participant holds."""
    pid = entry.participant
    if pid in entries:
        raise MalformedRecord(f"registry snapshot holds two records of {pid}")
    if pid not in registry:
        raise MalformedRecord(f"registry snapshot holds a record of {pid}, which its facts lack")
    p = registry.get(pid)
    claimed = (entry.name, entry.community, entry.role, entry.status, entry.kem)
    facts = (p.name, p.community, p.role, p.status, registry.kem_of(pid))
    if claimed != facts:
        raise MalformedRecord(f"the record of {pid} contradicts the registry facts")
    for k in entry.keys:
        other = owners.setdefault(k.key_id, pid)
        if other != pid:
            raise MalformedRecord(f"key {k.key_id} is registered to both {other} and {pid}")
