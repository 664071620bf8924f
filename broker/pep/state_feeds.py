"""What every enforcement point follows besides its own traffic: the registry
(`jcu.registry`, `RegistryFeed`: who holds which keys, the facts the policy reads)
and which crises are declared (`jcu.control`, `CrisisBoard`). The publisher and
the subscriber start these while their audit log and producer start (none needs
another), and act only once all have; the registry comes first, since crisis
declarations are verified against its keys, and its start reads the topic to its
end, so a node with an old local registry catches up before it acts.
"""

from __future__ import annotations

from broker.lifecycle import Service, stop_together
from broker.pep.context import PepContext
from broker.pep.control import CrisisBoard
from broker.trust.feed import RegistryFeed


class StateFeeds(Service):
    def __init__(
        self,
        ctx: PepContext,
        *,
        crisis: CrisisBoard | None = None,
        registry: RegistryFeed | None = None,
    ) -> None:
        kafka = ctx.settings.kafka
        self.registry = (
            registry if registry is not None else RegistryFeed(ctx.envelope.trusted, kafka)
        )
        self.crisis = crisis if crisis is not None else CrisisBoard(ctx.envelope, kafka)

    async def start(self) -> None:
        await self.registry.start()
        try:
            await self.crisis.start()
        except BaseException:
            await self.registry.stop()
            raise

    async def stop(self) -> None:
        await stop_together(self.crisis.stop, self.registry.stop)
