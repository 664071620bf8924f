"""Issuing, rotating and revoking participant keys: keystore + registry authority together.

Each operation writes private keys into the keystore, then re-issues the
participant's ParticipantRecord signed by the registry authority. Records are
files under $JCU_HOME/registry (see `broker.trust.keyring`). `init_keys` is
idempotent: it only creates what is missing and re-issues records whose
registry attributes changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.clock import Clock, to_millis, utc_now
from broker.config import Settings
from broker.errors import ConfigError, KeystoreError
from broker.schemas import SchemaStore
from broker.trust.keyring import (
    AUTHORITY_PUBLIC_FILE,
    KeyInfo,
    Keyring,
    ParticipantKeys,
    load_authority_public,
    registry_dir,
    sign_record,
    verify_record,
)
from broker.trust.keystore import AUTHORITY_OWNER, Keystore
from broker.trust.material import SIGNING_ALGORITHM, KemAlgorithm, key_id
from broker.trust.registry import Participant, Registry, load_registry

#: How long a new key is valid; rotation normally replaces it well before.
KEY_LIFETIME = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class InitResult:
    """What `init_keys` did, per participant: created, updated or unchanged."""

    authority_key_id: str
    authority_created: bool
    actions: dict[str, str] = field(default_factory=dict)
    registry_dir: Path = Path()

    def to_json(self) -> dict[str, Any]:
        return {
            "authority_key_id": self.authority_key_id,
            "authority_created": self.authority_created,
            "registry_dir": str(self.registry_dir),
            "participants": dict(self.actions),
        }


class KeyAdmin:
    """Key life-cycle operations on one keystore and one registry directory."""

    def __init__(
        self,
        keystore: Keystore,
        registry_directory: Path,
        store: SchemaStore,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.keystore = keystore
        self.registry_dir = Path(registry_directory)
        self.store = store
        self._clock = clock

    # -- authority --------------------------------------------------------------------

    def _authority(self, create: bool) -> tuple[ed25519.Ed25519PrivateKey, bool]:
        pub_path = self.registry_dir / AUTHORITY_PUBLIC_FILE
        if pub_path.exists():
            public = load_authority_public(self.registry_dir)
            kid = key_id(SIGNING_ALGORITHM, public.public_bytes_raw())
            if not self.keystore.has_key(AUTHORITY_OWNER, kid):
                raise KeystoreError(
                    f"the registry authority's private key {kid} "
                    f"is not in {self.keystore.directory}"
                )
            return self.keystore.signing_key(AUTHORITY_OWNER, kid), False
        if not create:
            raise KeystoreError(f"no registry authority at {pub_path}; run `jcu init`")
        kid, _ = self.keystore.generate_signing_key(AUTHORITY_OWNER)
        key = self.keystore.signing_key(AUTHORITY_OWNER, kid)
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pub_path.write_bytes(pem)
        return key, True

    # -- records ----------------------------------------------------------------------

    def _record_path(self, participant: str) -> Path:
        return self.registry_dir / f"{participant}.avro"

    def read(self, participant: str) -> ParticipantKeys | None:
        path = self._record_path(participant)
        if not path.exists():
            return None
        authority = load_authority_public(self.registry_dir)
        return verify_record(self.store, path.read_bytes(), authority)

    def _publish(self, entry: ParticipantKeys, authority: ed25519.Ed25519PrivateKey) -> bytes:
        data = sign_record(self.store, entry, authority)
        path = self._record_path(entry.participant)
        tmp = path.with_suffix(".avro.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return data

    def keyring(self) -> Keyring:
        return Keyring.load(self.registry_dir, self.store)

    # -- keys -------------------------------------------------------------------------

    def _new_key(self, owner: str, purpose: str, algorithm: str, now: datetime) -> KeyInfo:
        if purpose == "signing":
            kid, public = self.keystore.generate_signing_key(owner)
        else:
            kem: KemAlgorithm = "x25519" if algorithm == "x25519" else "mlkem768x25519"
            kid, public = self.keystore.generate_kem_key(owner, kem)
        return KeyInfo(
            key_id=kid,
            purpose="signing" if purpose == "signing" else "kem",
            algorithm=algorithm,
            public_key=public,
            not_before=now,
            not_after=now + KEY_LIFETIME,
        )

    def init_keys(self, registry: Registry) -> InitResult:
        """Keys and a signed record for every participant that lacks them (idempotent)."""
        now = to_millis(self._clock())
        authority, authority_created = self._authority(create=True)
        actions: dict[str, str] = {}
        for p in registry:
            actions[p.id] = self._ensure(p, registry.kem_of(p.id), authority, now)
        return InitResult(
            authority_key_id=key_id(SIGNING_ALGORITHM, authority.public_key().public_bytes_raw()),
            authority_created=authority_created,
            actions=actions,
            registry_dir=self.registry_dir,
        )

    def _ensure(
        self, p: Participant, kem: KemAlgorithm, authority: ed25519.Ed25519PrivateKey, now: datetime
    ) -> str:
        entry = self.read(p.id)
        if entry is None:
            entry = ParticipantKeys(
                participant=p.id,
                name=p.name,
                community=p.community,
                role=p.role,
                status=p.status,
                kem=kem,
                serial=1,
                issued=now,
                keys=(
                    self._new_key(p.id, "signing", SIGNING_ALGORITHM, now),
                    self._new_key(p.id, "kem", kem, now),
                ),
            )
            self._publish(entry, authority)
            return "created"
        attrs = {
            "name": p.name,
            "community": p.community,
            "role": p.role,
            "status": p.status,
            "kem": kem,
        }
        changed = {k: v for k, v in attrs.items() if getattr(entry, k) != v}
        keys: tuple[KeyInfo, ...] = entry.keys
        if entry.current("signing", now) is None:
            keys += (self._new_key(p.id, "signing", SIGNING_ALGORITHM, now),)
        if "kem" in changed or entry.current("kem", now) is None:
            keys = tuple(self._retire(k, now) if k.purpose == "kem" else k for k in keys)
            keys += (self._new_key(p.id, "kem", kem, now),)
        if not changed and keys == entry.keys:
            return "unchanged"
        self._publish(entry.with_changes(issued=now, keys=keys, **changed), authority)
        return "updated"

    @staticmethod
    def _retire(k: KeyInfo, now: datetime) -> KeyInfo:
        if k.retired is not None or k.revoked is not None:
            return k
        return replace(k, retired=now)

    def rotate(self, participant: str) -> ParticipantKeys:
        """New signing and KEM keys; the old ones retire now (and still verify older messages)."""
        now = to_millis(self._clock())
        authority, _ = self._authority(create=False)
        entry = self._existing(participant)
        keys = tuple(self._retire(k, now) for k in entry.keys)
        keys += (
            self._new_key(participant, "signing", SIGNING_ALGORITHM, now),
            self._new_key(participant, "kem", entry.kem, now),
        )
        new = entry.with_changes(issued=now, keys=keys)
        self._publish(new, authority)
        return new

    def revoke(
        self,
        participant: str,
        *,
        kid: str | None = None,
        at: datetime | None = None,
        reason: str | None = None,
    ) -> ParticipantKeys:
        """Revoke one key, or every key not yet revoked, from `at` (default: now)."""
        now = to_millis(self._clock())
        when = to_millis(at) if at is not None else now
        authority, _ = self._authority(create=False)
        entry = self._existing(participant)
        if kid is not None and entry.key(kid) is None:
            raise ConfigError(f"{participant} has no key {kid!r}; see `jcu keys list`")
        keys = tuple(
            replace(k, revoked=when, revocation_reason=reason)
            if (kid is None or k.key_id == kid) and k.revoked is None
            else k
            for k in entry.keys
        )
        new = entry.with_changes(issued=now, keys=keys)
        self._publish(new, authority)
        return new

    def _existing(self, participant: str) -> ParticipantKeys:
        entry = self.read(participant)
        if entry is None:
            raise ConfigError(f"no keys for {participant!r}; run `jcu init` first")
        return entry


def admin_for(settings: Settings, keystore: Keystore, store: SchemaStore) -> KeyAdmin:
    return KeyAdmin(keystore, registry_dir(settings), store)


def init_keys(settings: Settings, keystore: Keystore, store: SchemaStore) -> InitResult:
    """`jcu init`'s key step: keys and signed records for the sample registry."""
    registry = load_registry(settings.policies / "participants.yaml")
    return admin_for(settings, keystore, store).init_keys(registry)
