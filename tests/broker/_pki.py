"""Test PKI: a small federation on disk, with a fixed, movable clock.

The registry authority in a home of its own, and a node per participant of the
sample registry, each with its own keystore holding only its own keys; every
registration request approved, as `jcu` does it. The scrypt cost is lowered
(2**10, allowed only by passing `min_scrypt_n` explicitly) to keep the suite
fast; everything else is the real path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from broker.envelope import MemoryReplayGuard, Opener, ReplayGuard, Sealer
from broker.schemas import SchemaStore
from broker.trust.authority import Authority
from broker.trust.keyring import Keyring
from broker.trust.keystore import Keystore
from broker.trust.node import NodeHome, register, rotate
from broker.trust.records import ParticipantKeys
from broker.trust.registry import Registry, load_registry
from broker.trust.snapshot import canonical_facts
from broker.trust.state import TrustedRegistry

REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = b"test passphrase, not a secret"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
WEAK_N = 2**10
BUNDLE_HASH = "test-bundle"


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


def weak_keystore(directory: Path) -> Keystore:
    return Keystore(directory, PASSPHRASE, scrypt_n=WEAK_N, min_scrypt_n=WEAK_N)


@dataclass
class Pki:
    root: Path
    store: SchemaStore
    registry: Registry
    authority: Authority
    nodes: dict[str, NodeHome]
    keystores: dict[str, Keystore]
    clock: FakeClock

    def keystore_of(self, org: str) -> Keystore:
        return self.keystores[org]

    def keyring(self) -> Keyring:
        """The records the authority holds now (what its next snapshot carries)."""
        return Keyring(self.authority.records().values())

    def export(self) -> bytes:
        """The authority's next snapshot of the sample registry."""
        document = yaml.safe_load((REPO / "policies" / "participants.yaml").read_text())
        return self.authority.export(canonical_facts(document), self.registry, BUNDLE_HASH).data

    def trusted(self, org: str) -> TrustedRegistry:
        """`org`'s node state, after taking the authority's newest snapshot."""
        trusted = TrustedRegistry.load(self.nodes[org].registry_dir, self.store)
        trusted.offer(self.export())
        return trusted

    def rotate(self, org: str) -> ParticipantKeys:
        """As it happens: the node asks (signed by its current and new keys), the authority
        approves."""
        request = rotate(
            self.nodes[org], self.keystores[org], self.store, self.trusted(org), clock=self.clock
        )
        self.authority.approve(request.path.read_bytes(), self.registry)
        entry = self.authority.record(org)
        assert entry is not None
        return entry

    def revoke(
        self, org: str, reason: str = "compromised", at: datetime | None = None
    ) -> ParticipantKeys:
        self.authority.revoke(org, reason, at=at)
        entry = self.authority.record(org)
        assert entry is not None
        return entry

    def sealer(self, sender: str, keyring: Keyring | None = None) -> Sealer:
        return Sealer(
            sender,
            keystore=self.keystores[sender],
            keyring=keyring or self.keyring(),
            store=self.store,
            clock=self.clock,
        )

    def opener(
        self,
        participant: str,
        *,
        keyring: Keyring | None = None,
        guard: ReplayGuard | None = None,
        clock: FakeClock | None = None,
    ) -> Opener:
        return Opener(
            participant,
            keystore=self.keystores[participant],
            keyring=keyring or self.keyring(),
            store=self.store,
            replay_guard=guard if guard is not None else MemoryReplayGuard(),
            clock=clock or self.clock,
        )


def load_store() -> SchemaStore:
    return SchemaStore.load(REPO / "schemas")


def make_pki(
    root: Path, store: SchemaStore | None = None, participants: Iterable[str] | None = None
) -> Pki:
    store = store or load_store()
    registry = load_registry(REPO / "policies" / "participants.yaml")
    clock = FakeClock()
    authority = Authority.create(
        root / "authority", weak_keystore(root / "authority" / "keys"), store, clock=clock
    )
    anchor = authority.public_key_file.read_bytes()
    nodes: dict[str, NodeHome] = {}
    keystores: dict[str, Keystore] = {}
    for org in participants if participants is not None else registry.participants:
        node = nodes[org] = NodeHome.create(root / "nodes" / org, org)
        node.install_anchor(anchor)
        keystores[org] = weak_keystore(node.keystore_dir)
        request = register(
            node, keystores[org], store, registry.get(org), registry.kem_of(org), clock=clock
        )
        authority.approve(request.path.read_bytes(), registry, fingerprints=[request.fingerprint])
    return Pki(root, store, registry, authority, nodes, keystores, clock)
