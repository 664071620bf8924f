"""A participant's node: one organisation's home, its own keys, and the requests it makes.

A node's home (its JCU_HOME) holds exactly one organisation's private keys
and nobody else's:

    node.json                  which organisation this node is
    keys/<participant>/        its signing and KEM keys (encrypted keystore)
    keys/kdf.json              the keystore's scrypt parameters
    registry/authority.pem     the registry authority key it trusts
    registry/trusted.json      the newest registry snapshot it accepted (broker.trust.state)
    requests/*.jcureq          the registration, rotation and revocation requests it made

and, once it runs, its own audit state, ledgers and sinks. Every verb that
acts as a participant acts as the home's own (`acting_as`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from broker import config
from broker.clock import Clock, to_millis, utc_now
from broker.errors import ConfigError, NotThisNode
from broker.files import check_private_home, private_dir, write_private
from broker.schemas import SchemaStore
from broker.trust.keystore import Keystore, open_keystore
from broker.trust.material import SIGNING_ALGORITHM, KemAlgorithm, key_id
from broker.trust.records import KeyInfo
from broker.trust.registry import Participant
from broker.trust.request import SUFFIX, Kind, build_request, fingerprint_of
from broker.trust.state import ANCHOR_FILE, TrustedRegistry, load_anchor

NODE_FILE = "node.json"
#: What a new key asks for; the authority sets the real validity when it approves.
_REQUESTED_LIFETIME = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class NodeHome:
    """One organisation's home. `create` it once (`jcu init`), `open` it after."""

    root: Path
    participant: str

    @property
    def keystore_dir(self) -> Path:
        return config.keystore_dir(self.root)

    def keystore(self, env: Mapping[str, str] | None = None) -> Keystore:
        """This node's keystore, its passphrase from `env` (or a prompt)."""
        return open_keystore(self.keystore_dir, env, purpose=f"the keys of {self.participant}")

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def requests_dir(self) -> Path:
        return self.root / "requests"

    @classmethod
    def open(cls, root: Path) -> NodeHome:
        check_private_home(Path(root))
        path = Path(root) / NODE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            participant = str(data["participant"])
        except FileNotFoundError:
            hint = (
                " (it is the registry authority's home)"
                if (Path(root) / "authority.json").exists()
                else ""
            )
            raise ConfigError(
                f"JCU_HOME={root} is not an organisation's node{hint}; make one with "
                "`jcu init --participant ORG`, or point JCU_HOME at yours"
            ) from None
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(f"{path} is damaged; restore the node's home from backup") from None
        return cls(Path(root), participant)

    @classmethod
    def create(cls, root: Path, participant: str) -> NodeHome:
        """A new home for `participant`; refuses a home that is anything else already."""
        root = Path(root)
        if (root / "authority.json").exists():
            raise ConfigError(f"{root} is the registry authority's home; a node needs its own")
        if (root / NODE_FILE).exists():
            other = cls.open(root).participant
            raise ConfigError(
                f"{root} already is the node of {other}"
                + ("" if other != participant else "; its keys exist (see `jcu keys list`)")
            )
        keys = root / "keys"
        if keys.is_dir() and any(p.is_dir() for p in keys.iterdir()):
            raise ConfigError(f"{keys} already holds keys; a node's home starts empty")
        private_dir(root)
        write_private(
            root / NODE_FILE, json.dumps({"format": 1, "participant": participant}).encode()
        )
        return cls(root, participant)

    def acting_as(self, requested: str | None) -> str:
        """The participant a verb acts as: this node's own. Naming another is refused."""
        if requested is not None and requested != self.participant:
            raise NotThisNode(
                f"this node is {self.participant} (JCU_HOME={self.root}) and holds no key of "
                f"{requested}; run it with {requested}'s own node"
            )
        return self.participant

    def install_anchor(self, pem: bytes, *, replace: bool = False) -> str:
        """Trust this registry authority key; replacing one already trusted needs `replace`."""
        path = self.registry_dir / ANCHOR_FILE
        if path.exists() and not replace and path.read_bytes() != pem:
            raise ConfigError(
                f"{path} already holds a registry authority key; replacing the key this node "
                "trusts is a security decision: pass --replace if the authority told you so"
            )
        tmp = self.registry_dir / ".anchor-check.pem"
        write_private(tmp, pem)
        try:
            key = load_anchor(tmp)
        finally:
            tmp.unlink()
        write_private(path, pem)
        return key_id(SIGNING_ALGORITHM, key.public_bytes_raw())


@dataclass(frozen=True, slots=True)
class RequestFile:
    """A request a node wrote, to hand to the registry authority."""

    participant: str
    kind: str
    path: Path
    fingerprint: str
    keys: tuple[KeyInfo, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "participant": self.participant,
            "kind": self.kind,
            "request": str(self.path),
            "fingerprint": self.fingerprint,
            "keys": [
                {"key_id": k.key_id, "purpose": k.purpose, "algorithm": k.algorithm}
                for k in self.keys
            ],
        }


def _new_keys(
    keystore: Keystore, owner: str, kem: KemAlgorithm, clock: Clock
) -> tuple[KeyInfo, ...]:
    now = to_millis(clock())
    skid, spub = keystore.generate_signing_key(owner)
    kkid, kpub = keystore.generate_kem_key(owner, kem)
    end = now + _REQUESTED_LIFETIME
    return (
        KeyInfo(skid, "signing", SIGNING_ALGORITHM, spub, now, end),
        KeyInfo(kkid, "kem", kem, kpub, now, end),
    )


def _write_request(
    home: NodeHome, kind: str, data: bytes, keys: tuple[KeyInfo, ...], clock: Clock
) -> RequestFile:
    stamp = to_millis(clock()).strftime("%Y%m%dT%H%M%S%f")[:-3]
    path = home.requests_dir / f"{home.participant}-{kind}-{stamp}{SUFFIX}"
    write_private(path, data)
    return RequestFile(home.participant, kind, path, fingerprint_of(data), keys)


def register(
    home: NodeHome,
    keystore: Keystore,
    store: SchemaStore,
    claim: Participant,
    kem: KemAlgorithm,
    *,
    clock: Clock = utc_now,
) -> RequestFile:
    """New signing and KEM keys for this node and the request that registers them."""
    if claim.id != home.participant:
        raise ConfigError(f"the facts given are those of {claim.id}, not of {home.participant}")
    keys = _new_keys(keystore, home.participant, kem, clock)
    signer = keystore.signing_key(home.participant, keys[0].key_id)
    data = build_request(
        store,
        kind="register",
        participant=home.participant,
        created=clock(),
        facts=claim.claim(),
        kem=kem,
        keys=keys,
        signers=[(keys[0].key_id, signer)],
    )
    return _write_request(home, "register", data, keys, clock)


def _current_signer(
    home: NodeHome,
    keystore: Keystore,
    trusted: TrustedRegistry,
    clock: Clock,
    *,
    any_held: bool = False,
) -> list[tuple[str, Any]]:
    """This node's registered signing key(s) it holds: the current one, or (for a
    revocation) every registered one it still has."""
    entry = trusted.keyring.entry(home.participant)
    now = clock()
    held = [
        k
        for k in entry.keys
        if k.purpose == "signing"
        and keystore.has_key(home.participant, k.key_id)
        and (any_held or k.usable_at(now))
    ]
    return [(k.key_id, keystore.signing_key(home.participant, k.key_id)) for k in held]


def rotate(
    home: NodeHome,
    keystore: Keystore,
    store: SchemaStore,
    trusted: TrustedRegistry,
    *,
    clock: Clock = utc_now,
) -> RequestFile:
    """New keys and a rotation request signed by them and by the key in use now."""
    registry = trusted.registry
    current = _current_signer(home, keystore, trusted, clock)
    if not current:
        raise ConfigError(
            f"{home.participant} holds no signing key the registry accepts now (revoked or "
            "expired): register again with `jcu keys register` and confirm the fingerprint "
            "with the registry authority"
        )
    keys = _new_keys(keystore, home.participant, registry.kem_of(home.participant), clock)
    new_signer = (keys[0].key_id, keystore.signing_key(home.participant, keys[0].key_id))
    return _request(home, store, trusted, "rotate", keys, [new_signer, *current], clock)


def reregister(
    home: NodeHome,
    keystore: Keystore,
    store: SchemaStore,
    trusted: TrustedRegistry,
    *,
    clock: Clock = utc_now,
) -> RequestFile:
    """After its keys were revoked: new keys and a registration request (fingerprint needed)."""
    registry = trusted.registry
    return register(
        home,
        keystore,
        store,
        registry.get(home.participant),
        registry.kem_of(home.participant),
        clock=clock,
    )


def revocation(
    home: NodeHome,
    keystore: Keystore,
    store: SchemaStore,
    trusted: TrustedRegistry,
    reason: Literal["compromised", "superseded"],
    *,
    clock: Clock = utc_now,
) -> RequestFile:
    """A request that the authority revoke this node's keys, signed by the keys it has."""
    signers = _current_signer(home, keystore, trusted, clock, any_held=True)
    if not signers:
        raise ConfigError(
            f"{home.participant} holds none of its registered signing keys; ask the registry "
            "authority to revoke by other means (`jcu authority revoke` on its side)"
        )
    return _request(home, store, trusted, "revoke", (), signers, clock, reason=reason)


def _request(
    home: NodeHome,
    store: SchemaStore,
    trusted: TrustedRegistry,
    kind: Kind,
    keys: tuple[KeyInfo, ...],
    signers: list[tuple[str, Any]],
    clock: Clock,
    *,
    reason: str | None = None,
) -> RequestFile:
    """A request about a participant the registry knows, with the facts it holds of it."""
    registry = trusted.registry
    data = build_request(
        store,
        kind=kind,
        participant=home.participant,
        created=clock(),
        facts=registry.get(home.participant).claim(),
        kem=registry.kem_of(home.participant),
        keys=keys,
        signers=signers,
        revocation_reason=reason,
    )
    return _write_request(home, kind, data, keys, clock)
