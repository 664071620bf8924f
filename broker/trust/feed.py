"""Following `jcu.registry`: newer registry snapshots reach running enforcement points.

Every publisher and subscriber follows the topic and offers each record to the
node's `TrustedRegistry`, which accepts only a newer snapshot the registry
authority signed (and persists it before it takes effect). `start()` returns
once the topic has been read to its end, so a node started with an old local
registry catches up before it seals, opens or delivers anything. Refused
records (forgeries, older epochs, forks, records not signed by the authority)
are logged and counted by the follower, never applied; older snapshots the
topic still holds from before the node's own (history, until compaction) are
passed over quietly (`InTopicOrder`).
"""

from __future__ import annotations

from broker.kafka.connection import KafkaConnection
from broker.kafka.follower import TopicFollower
from broker.kafka.topics import REGISTRY
from broker.lifecycle import Service
from broker.trust.snapshot import VerifiedSnapshot
from broker.trust.state import TrustedRegistry
from broker.trust.topic import InTopicOrder


class RegistryFeed(Service):
    """Offers every record of `topic` to `trusted`, in order, while it runs."""

    def __init__(
        self, trusted: TrustedRegistry, kafka: KafkaConnection, *, topic: str = REGISTRY
    ) -> None:
        self._order = InTopicOrder(trusted)
        self._feed: TopicFollower[VerifiedSnapshot | None] = TopicFollower(
            kafka, topic, self._read, self._apply
        )
        self.applied = 0

    @property
    def rejected(self) -> list[tuple[bytes | None, str]]:
        """(key, reason) of the registry records refused."""
        return self._feed.rejected

    @property
    def healthy(self) -> bool:
        return self._feed.healthy

    async def start(self) -> None:
        await self._feed.start()

    async def connect(self) -> None:
        """`start`'s first half (`TopicFollower.connect`): nothing applied yet."""
        await self._feed.connect()

    async def catch_up(self) -> None:
        """`start`'s second half: the topic applied to the end `connect` found."""
        await self._feed.catch_up()

    async def stop(self) -> None:
        await self._feed.stop()

    def _read(self, key: bytes | None, value: bytes) -> VerifiedSnapshot | None:
        # Accepting is done here: offer() verifies, persists and applies in one step, and
        # raises a Rejected (with its reason) for the follower to log and count.
        return self._order.offer(value)

    def _apply(self, snapshot: VerifiedSnapshot | None) -> None:
        if snapshot is not None:
            self.applied += 1
