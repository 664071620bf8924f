"""Test PKI: a keystore, a registry authority and signed records for the sample registry.

Built in a temporary directory with a fixed, movable clock. The scrypt cost is
lowered (2**10) only to keep the suite fast; everything else is the real path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.envelope import MemoryReplayGuard, Opener, ReplayGuard, Sealer
from broker.schemas import SchemaStore
from broker.trust.key_admin import KeyAdmin
from broker.trust.keyring import Keyring
from broker.trust.keystore import Keystore
from broker.trust.registry import Registry, load_registry

REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = b"test passphrase, not a secret"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@dataclass
class Pki:
    root: Path
    store: SchemaStore
    registry: Registry
    keystore: Keystore
    admin: KeyAdmin
    clock: FakeClock

    def keyring(self) -> Keyring:
        return self.admin.keyring()

    def sealer(self, sender: str, keyring: Keyring | None = None) -> Sealer:
        return Sealer(sender, keystore=self.keystore, keyring=keyring or self.keyring(),
                      store=self.store, clock=self.clock)

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
            keystore=self.keystore,
            keyring=keyring or self.keyring(),
            store=self.store,
            replay_guard=guard if guard is not None else MemoryReplayGuard(),
            clock=clock or self.clock,
        )


def load_store() -> SchemaStore:
    return SchemaStore.load(REPO / "schemas")


def make_pki(root: Path, store: SchemaStore | None = None) -> Pki:
    store = store or load_store()
    registry = load_registry(REPO / "policies" / "participants.yaml")
    clock = FakeClock()
    keystore = Keystore(root / "keys", PASSPHRASE, scrypt_n=2**10)
    admin = KeyAdmin(keystore, root / "registry", store, clock=clock)
    admin.init_keys(registry)
    return Pki(root, store, registry, keystore, admin, clock)
