"""The registry authority's office: approve requests, revoke keys, rotate its own key, export.

Its home (JCU_HOME of the authority, never a participant's) holds:

    authority.json            marks the home as the authority's
    keys/_authority/          its signing keys (encrypted keystore)
    authority.pem             its current public key: what every node trusts
    records/<participant>.avro   the current signed ParticipantRecord of each
    state.json                epoch, key chain, ids of every key ever registered,
                              digests of the requests approved
    approved/                 the request files approved
    snapshots/registry-epoch-NNNNNN.jcureg   every snapshot exported

Nothing here touches Kafka: the authority may stay offline. Its snapshot files
are carried to `jcu.registry` by anyone (`jcu registry publish`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.clock import Clock, to_millis, utc_now
from broker.errors import ConfigError, RegistryError
from broker.files import check_private_home, private_dir, write_private
from broker.schemas import SchemaStore
from broker.trust.authority.signing import sign_record, sign_snapshot, sign_transition
from broker.trust.keystore import AUTHORITY_OWNER, Keystore
from broker.trust.material import SIGNING_ALGORITHM
from broker.trust.records import (
    REVOCATION_REASONS,
    ParticipantKeys,
    verify_record,
)
from broker.trust.registry import Registry
from broker.trust.request import (
    MAX_REQUEST_AGE,
    RegistrationRequest,
    claimed_participant,
    read_request,
)
from broker.trust.snapshot import SNAPSHOT_VERSION, SUFFIX, Transition

MARKER = "authority.json"
PUBLIC_FILE = "authority.pem"
#: How long a newly approved key is valid; rotation normally replaces it well before.
KEY_LIFETIME = timedelta(days=365)
#: How far ahead of the authority's clock a request may say it was made.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Approval:
    """What one approval or revocation changed in a participant's record."""

    participant: str
    kind: str
    serial: int
    added: tuple[str, ...] = ()
    retired: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()
    fingerprint: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "participant": self.participant,
            "kind": self.kind,
            "serial": self.serial,
            "keys_added": list(self.added),
            "keys_retired": list(self.retired),
            "keys_revoked": list(self.revoked),
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, slots=True)
class Export:
    epoch: int
    path: Path
    participants: int
    records: int
    data: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "file": str(self.path),
            "participants": self.participants,
            "records": self.records,
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }


def is_authority_home(home: Path) -> bool:
    return (home / MARKER).is_file()


class Authority:
    """One registry authority, in its own home. `create` once, then `open`."""

    def __init__(
        self, home: Path, keystore: Keystore, store: SchemaStore, *, clock: Clock = utc_now
    ) -> None:
        self.home = Path(home)
        self._keystore = keystore
        self._store = store
        self._clock = clock
        self._state = self._read_state()

    # -- the home -----------------------------------------------------------------------

    @classmethod
    def create(
        cls, home: Path, keystore: Keystore, store: SchemaStore, *, clock: Clock = utc_now
    ) -> Authority:
        """A new authority: its first signing key, its public key file, epoch 0."""
        home = Path(home)
        if is_authority_home(home):
            raise ConfigError(f"{home} already is a registry authority's home")
        if (home / "node.json").exists():
            raise ConfigError(
                f"{home} is a participant's node: the authority needs a home of its own"
            )
        private_dir(home)
        kid, public = keystore.generate_signing_key(AUTHORITY_OWNER)
        write_private(home / MARKER, json.dumps({"role": "registry-authority"}).encode())
        state = {"format": 1, "epoch": 0, "key_id": kid, "chain": [], "keys": {}, "approved": []}
        write_private(home / "state.json", json.dumps(state, indent=1).encode())
        authority = cls(home, keystore, store, clock=clock)
        authority._write_public(public)
        return authority

    @classmethod
    def open(
        cls, home: Path, keystore: Keystore, store: SchemaStore, *, clock: Clock = utc_now
    ) -> Authority:
        check_private_home(Path(home))
        if not is_authority_home(Path(home)):
            raise ConfigError(
                f"{home} is not a registry authority's home; run `jcu authority init` there "
                "(set JCU_HOME to the authority's home)"
            )
        return cls(home, keystore, store, clock=clock)

    def _read_state(self) -> dict[str, Any]:
        path = self.home / "state.json"
        try:
            state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{path} is missing; restore the authority's home from backup"
            ) from None
        except (OSError, ValueError):
            raise ConfigError(
                f"{path} is damaged; restore the authority's home from backup"
            ) from None
        return state

    def _save_state(self) -> None:
        write_private(self.home / "state.json", json.dumps(self._state, indent=1).encode())

    def _write_public(self, raw: bytes) -> None:
        pem = ed25519.Ed25519PublicKey.from_public_bytes(raw).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        path = self.home / PUBLIC_FILE
        write_private(path, pem)
        path.chmod(0o644)  # a public key: meant to be handed to every node

    @property
    def key_id(self) -> str:
        return str(self._state["key_id"])

    @property
    def epoch(self) -> int:
        return int(self._state["epoch"])

    @property
    def public_key_file(self) -> Path:
        return self.home / PUBLIC_FILE

    def _signing_key(self) -> ed25519.Ed25519PrivateKey:
        return self._keystore.signing_key(AUTHORITY_OWNER, self.key_id)

    def _public(self) -> ed25519.Ed25519PublicKey:
        return self._signing_key().public_key()

    # -- records ------------------------------------------------------------------------

    def _record_path(self, participant: str) -> Path:
        return self.home / "records" / f"{participant}.avro"

    def record(self, participant: str) -> ParticipantKeys | None:
        path = self._record_path(participant)
        if not path.exists():
            return None
        return verify_record(self._store, path.read_bytes(), self._public())

    def records(self) -> dict[str, ParticipantKeys]:
        out: dict[str, ParticipantKeys] = {}
        for path in sorted((self.home / "records").glob("*.avro")):
            out[path.stem] = verify_record(self._store, path.read_bytes(), self._public())
        return out

    def _write_record(self, entry: ParticipantKeys) -> None:
        data = sign_record(self._store, entry, self._signing_key())
        write_private(self._record_path(entry.participant), data)
        for k in entry.keys:
            self._state["keys"][k.key_id] = entry.participant

    # -- approving ----------------------------------------------------------------------

    def approve(
        self, data: bytes, registry: Registry, *, fingerprints: Collection[str] = ()
    ) -> Approval:
        """Check one request against the registry source and apply it to the record.

        A first registration must have its fingerprint among `fingerprints` (what
        the organisation confirmed over another channel); a rotation or revocation
        must be signed by a key the registry holds for the organisation.
        """
        now = to_millis(self._clock())
        existing = self.record(claimed_participant(self._store, data))
        known = {
            k.key_id: k.public_key
            for k in (existing.keys if existing else ())
            if k.purpose == "signing"
        }
        request = read_request(self._store, data, known)
        pid = request.participant
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._state["approved"]:
            raise RegistryError(
                f"this request of {pid} was approved before; it is not applied twice"
            )
        if request.created < now - MAX_REQUEST_AGE or request.created > now + CLOCK_SKEW:
            raise RegistryError(
                f"the request of {pid} was made {request.created.isoformat()}: more than "
                f"{MAX_REQUEST_AGE.days} days ago or in the future; ask for a fresh one"
            )
        if pid not in registry:
            raise RegistryError(
                f"{pid} is not in the registry source; add its entry to participants.yaml "
                f"(it claims: {request.facts}) and approve again"
            )
        if request.kind == "revoke":
            approval = self._apply_revocation(request, existing, now)
        else:
            approval = self._apply_keys(request, existing, registry, now, fingerprints)
        self._state["approved"].append(digest)
        self._save_state()
        write_private(self.home / "approved" / f"{pid}-{digest[:16]}.jcureq", data)
        return approval

    def _apply_keys(
        self,
        request: RegistrationRequest,
        existing: ParticipantKeys | None,
        registry: Registry,
        now: datetime,
        fingerprints: Collection[str],
    ) -> Approval:
        pid = request.participant
        p = registry.get(pid)
        if request.facts != p.claim():
            raise RegistryError(
                f"{pid} claims facts that differ from the registry source: it claims "
                f"{request.facts}, the source says {p.claim()}; settle which is right first"
            )
        kem = registry.kem_of(pid)
        if request.kem != kem:
            raise RegistryError(f"{pid} must use the {kem} KEM of its community, not {request.kem}")
        signing = [k for k in request.keys if k.purpose == "signing"]
        kems = [k for k in request.keys if k.purpose == "kem"]
        if len(signing) != 1 or signing[0].algorithm != SIGNING_ALGORITHM:
            raise RegistryError(f"the request of {pid} must carry exactly one Ed25519 signing key")
        if len(kems) != 1 or kems[0].algorithm != kem:
            raise RegistryError(f"the request of {pid} must carry exactly one {kem} KEM key")
        reused = [k.key_id for k in request.keys if k.key_id in self._state["keys"]]
        if reused:
            raise RegistryError(
                f"key {', '.join(reused)} was registered before; a key is never registered twice"
            )
        usable = [k for k in (existing.keys if existing else ()) if k.usable_at(now)]
        if request.kind == "register":
            if usable:
                raise RegistryError(
                    f"{pid} is registered with keys in use; its node asks for a rotation "
                    "(`jcu keys rotate`), signed by its current key"
                )
            wanted = {f.replace(" ", "").lower() for f in fingerprints}
            if request.fingerprint.replace(" ", "") not in wanted:
                raise RegistryError(
                    f"first registration of {pid}: confirm the request's fingerprint "
                    f"({request.fingerprint}) with {pid} over another channel, then pass it "
                    "with --fingerprint"
                )
        else:  # rotate
            current = {k.key_id for k in usable if k.purpose == "signing"}
            if not request.signed_by & current:
                raise RegistryError(
                    f"a rotation of {pid} must be signed by a signing key it holds now "
                    f"({', '.join(sorted(current)) or 'none: register again'})"
                )
        added = tuple(
            replace(
                k,
                not_before=now,
                not_after=now + KEY_LIFETIME,
                retired=None,
                revoked=None,
                revocation_reason=None,
            )
            for k in request.keys
        )
        old = tuple(
            replace(k, retired=now) if k.retired is None and k.revoked is None else k
            for k in (existing.keys if existing else ())
        )
        retired = tuple(k.key_id for k in usable)
        entry = ParticipantKeys(
            participant=pid,
            name=p.name,
            community=p.community,
            role=p.role,
            status=p.status,
            kem=kem,
            serial=(existing.serial + 1) if existing else 1,
            issued=now,
            keys=old + added,
        )
        self._write_record(entry)
        return Approval(
            pid,
            request.kind,
            entry.serial,
            added=tuple(k.key_id for k in added),
            retired=retired,
            fingerprint=request.fingerprint,
        )

    def _apply_revocation(
        self, request: RegistrationRequest, existing: ParticipantKeys | None, now: datetime
    ) -> Approval:
        pid = request.participant
        if existing is None or not request.signed_by:
            raise RegistryError(
                f"a revocation request of {pid} must be signed by a key the registry holds for it"
            )
        reason = request.revocation_reason or "compromised"
        # From when the organisation asked, not from when the authority got to it.
        return self._revoke(existing, reason, min(request.created, now), now, kind="revoke")

    def revoke(self, participant: str, reason: str, *, at: datetime | None = None) -> Approval:
        """Revoke every key of `participant` not yet revoked, from `at` (default: now)."""
        if reason not in REVOCATION_REASONS:
            raise ConfigError(f"--reason must be one of {', '.join(REVOCATION_REASONS)}")
        now = to_millis(self._clock())
        existing = self.record(participant)
        if existing is None:
            raise ConfigError(f"{participant} has no registered keys to revoke")
        approval = self._revoke(existing, reason, to_millis(at) if at else now, now, kind="revoke")
        self._save_state()
        return approval

    def _revoke(
        self, existing: ParticipantKeys, reason: str, when: datetime, now: datetime, *, kind: str
    ) -> Approval:
        keys = tuple(
            replace(k, revoked=when, revocation_reason=reason) if k.revoked is None else k
            for k in existing.keys
        )
        revoked = tuple(k.key_id for k, old in zip(keys, existing.keys, strict=True) if k != old)
        entry = existing.with_changes(issued=now, keys=keys)
        self._write_record(entry)
        return Approval(existing.participant, kind, entry.serial, revoked=revoked)

    # -- its own key --------------------------------------------------------------------

    def rotate_own_key(self) -> Transition:
        """A new authority signing key, endorsed by the old one; every record re-signed."""
        old = self._signing_key()
        kid, public = self._keystore.generate_signing_key(AUTHORITY_OWNER)
        transition = sign_transition(old, public, self.epoch + 1)
        records = self.records()
        self._state["key_id"] = kid
        self._state["chain"].append(
            {k: (v.hex() if isinstance(v, bytes) else v) for k, v in transition.to_avro().items()}
        )
        now = to_millis(self._clock())
        for entry in records.values():
            self._write_record(entry.with_changes(issued=now))
        self._save_state()
        self._write_public(public)
        return transition

    def _chain(self) -> list[dict[str, Any]]:
        return [
            {
                **t,
                "public_key": bytes.fromhex(t["public_key"]),
                "signature": bytes.fromhex(t["signature"]),
            }
            for t in self._state["chain"]
        ]

    # -- exporting ----------------------------------------------------------------------

    def export(self, facts: str, registry: Registry, policy_bundle_hash: str) -> Export:
        """The next epoch's signed snapshot, as a file under snapshots/.

        `facts` is the registry source as canonical JSON, `registry` the same parsed;
        records whose attributes lag the facts (a suspension, a new name) are re-issued
        first. Records of participants no longer in the facts are left out.
        """
        now = to_millis(self._clock())
        records = self.records()
        included: list[bytes] = []
        for pid, entry in sorted(records.items()):
            if pid not in registry:
                continue
            p = registry.get(pid)
            attrs = {
                "name": p.name,
                "community": p.community,
                "role": p.role,
                "status": p.status,
                "kem": registry.kem_of(pid),
            }
            if any(getattr(entry, k) != v for k, v in attrs.items()):
                entry = entry.with_changes(issued=now, **attrs)
                self._write_record(entry)
            included.append(self._record_path(pid).read_bytes())
        epoch = self.epoch + 1
        rec = {
            "version": SNAPSHOT_VERSION,
            "epoch": epoch,
            "issued": now,
            "facts": facts,
            "policy_bundle_hash": policy_bundle_hash,
            "records": included,
            "authority_chain": self._chain(),
        }
        data = sign_snapshot(self._store, rec, self._signing_key())
        path = self.home / "snapshots" / f"registry-epoch-{epoch:06d}{SUFFIX}"
        write_private(path, data)
        path.chmod(0o644)  # public: meant to be published
        self._state["epoch"] = epoch
        self._save_state()
        return Export(epoch, path, len(registry.participants), len(included), data)
