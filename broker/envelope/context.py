"""Everything needed to seal or open as a participant on this machine, loaded from Settings.

The publisher, the subscriber and `jcu seal` / `jcu open` all start here:
schema store, keystore (passphrase from the environment) and the keyring of
verified ParticipantRecords under $JCU_HOME/registry.
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
from broker.trust.keyring import Keyring, registry_dir
from broker.trust.keystore import Keystore, open_keystore


def replay_db_path(settings: Settings, participant: str) -> Path:
    """The persistent replay guard (dedup store) of one receiving participant."""
    return settings.home / "replay" / f"{participant}.sqlite"


@dataclass(frozen=True, slots=True)
class EnvelopeContext:
    settings: Settings
    store: SchemaStore
    keystore: Keystore
    keyring: Keyring

    @classmethod
    def load(cls, settings: Settings, env: Mapping[str, str] | None = None) -> EnvelopeContext:
        store = SchemaStore.load(settings.schemas)
        keyring = Keyring.load(registry_dir(settings), store)
        return cls(settings, store, open_keystore(settings.keystore, env), keyring)

    def sealer(self, sender: str, *, clock: Clock = utc_now) -> Sealer:
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
