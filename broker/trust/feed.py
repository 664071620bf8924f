"""Following `jcu.registry`: key rotations and revocations reach running enforcement points.

The keyring is loaded from $JCU_HOME/registry when a process starts; `jcu keys
rotate | revoke` also publish the new signed record on the compacted
`jcu.registry` topic. Every publisher and subscriber follows that topic and
applies each record the registry authority signed whose serial is newer than
the one it holds (`Keyring.update`), so a revoked key is refused from the
moment the record arrives, without a restart. Records that do not verify are
refused by the follower (`TopicFollower.receive`), never applied.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.envelope.context import EnvelopeContext
from broker.errors import MalformedRecord
from broker.kafka.follower import TopicFollower
from broker.kafka.topics import REGISTRY
from broker.lifecycle import Service
from broker.logs import get_logger
from broker.schemas import SchemaStore
from broker.trust.keyring import (
    Keyring,
    ParticipantKeys,
    load_authority_public,
    registry_dir,
    verify_record,
)

_log = get_logger(__name__)


class KeyringFeed(Service):
    """Applies newer signed participant records from `topic` to `keyring`, in place."""

    def __init__(
        self,
        keyring: Keyring,
        store: SchemaStore,
        authority: ed25519.Ed25519PublicKey,
        bootstrap: str,
        *,
        topic: str = REGISTRY,
    ) -> None:
        self._keyring = keyring
        self._store = store
        self._authority = authority
        self._feed = TopicFollower(bootstrap, topic, self._read, self._apply)
        self.applied = 0

    @property
    def rejected(self) -> list[tuple[bytes | None, str]]:
        """(key, reason) of the registry records refused: tombstones, bad or mis-keyed ones."""
        return self._feed.rejected

    @classmethod
    def for_context(cls, ctx: EnvelopeContext, bootstrap: str) -> KeyringFeed:
        authority = load_authority_public(registry_dir(ctx.settings))
        return cls(ctx.keyring, ctx.store, authority, bootstrap)

    @property
    def healthy(self) -> bool:
        return self._feed.healthy

    async def start(self) -> None:
        await self._feed.start()

    async def stop(self) -> None:
        await self._feed.stop()

    def _read(self, key: bytes | None, value: bytes) -> ParticipantKeys:
        entry = verify_record(self._store, value, self._authority)
        if key is None or key.decode(errors="replace") != entry.participant:
            raise MalformedRecord(
                f"registry record keyed {key!r} is the record of {entry.participant!r}"
            )
        return entry

    def _apply(self, entry: ParticipantKeys) -> None:
        if self._keyring.update(entry):
            self.applied += 1
            _log.info("keyring updated", participant=entry.participant, serial=entry.serial)
