"""Everything one node needs to seal or open as its own participant, loaded from Settings.

The publisher, the subscriber and `jcu seal` / `jcu open` all start here: the
schema store, the node's home (which participant it is), its keystore
(passphrase from the environment or a prompt) and the registry state it has
accepted (`broker.trust.state`), whose keyring says which public key is whose.
A context seals and opens only as the node's own participant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from broker.clock import Clock, utc_now
from broker.config import Settings
from broker.envelope.opener import Opener
from broker.envelope.replay import MemoryReplayGuard, ReplayGuard, SqliteReplayGuard
from broker.envelope.sealer import Sealer
from broker.schemas import SchemaStore
from broker.trust.keyring import Keyring
from broker.trust.keystore import Keystore
from broker.trust.node import NodeHome
from broker.trust.state import TrustedRegistry


def replay_db_path(settings: Settings, participant: str) -> Path:
    """The persistent replay guard (dedup store) of one receiving participant."""
    return settings.home / "replay" / f"{participant}.sqlite"


@dataclass(frozen=True, slots=True)
class EnvelopeContext:
    settings: Settings
    store: SchemaStore
    keystore: Keystore
    trusted: TrustedRegistry
    node: NodeHome

    @classmethod
    def load(
        cls,
        settings: Settings,
        env: Mapping[str, str] | None = None,
        *,
        keystore: Keystore | None = None,
        store: SchemaStore | None = None,
    ) -> EnvelopeContext:
        """The node at `settings.home`; its keystore opened from `env` (its passphrase) and
        its schemas loaded, unless the caller has them already."""
        node = NodeHome.open(settings.home)
        if keystore is None:
            keystore = node.keystore(env)
        if store is None:
            store = SchemaStore.load(settings.schemas)
        trusted = TrustedRegistry.load(node.registry_dir, store)
        return cls(settings, store, keystore, trusted, node)

    @property
    def keyring(self) -> Keyring:
        return self.trusted.keyring

    @property
    def identity(self) -> str:
        """The participant this node is."""
        return self.node.participant

    def sealer(self, sender: str, *, clock: Clock = utc_now) -> Sealer:
        self.node.acting_as(sender)
        self.keyring.entry(sender)
        return Sealer(
            sender, keystore=self.keystore, keyring=self.keyring, store=self.store, clock=clock
        )

    def opener(
        self,
        participant: str,
        *,
        replay_guard: ReplayGuard | None = None,
        clock: Clock = utc_now,
    ) -> Opener:
        """An opener; without a guard, an in-memory one (use `persistent_guard` for services)."""
        self.node.acting_as(participant)
        self.keyring.entry(participant)
        return Opener(
            participant,
            keystore=self.keystore,
            keyring=self.keyring,
            store=self.store,
            replay_guard=replay_guard if replay_guard is not None else MemoryReplayGuard(),
            clock=clock,
        )

    def persistent_guard(self, participant: str) -> SqliteReplayGuard:
        return SqliteReplayGuard(replay_db_path(self.settings, participant))
