"""What every enforcement point follows besides its own traffic: the registry
(`jcu.registry`, `RegistryFeed`: who holds which keys, the facts the policy reads)
and which crises are declared (`jcu.control`, `CrisisBoard`). The publisher and
the subscriber start these while their audit log and producer start (none needs
another), and act only once all have; the registry comes first, since crisis
declarations are verified against its keys, and its start reads the topic to its
end, so a node with an old local registry catches up before it acts. Only the
reading is in that order: both connect at once.
"""

from __future__ import annotations

from broker.lifecycle import Service, start_together, stop_together, to_the_end
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
        self.registry = (
            registry
            if registry is not None
            else RegistryFeed(ctx.envelope.trusted, ctx.settings.kafka)
        )
        self.crisis = (
            crisis if crisis is not None else CrisisBoard(ctx.envelope, ctx.settings.kafka)
        )

    async def start(self) -> None:
        # Both connect at once (each its own TLS, SASL and metadata round trips: what a
        # one-shot verb waits for); then the registry is read to its end before any crisis
        # declaration is verified against its keys.
        try:
            await start_together(self.registry.connect, self.crisis.connect)
            await self.registry.catch_up()
            await self.crisis.catch_up()
        except BaseException:
            await to_the_end(self.stop())
            raise

    async def stop(self) -> None:
        await stop_together(self.crisis.stop, self.registry.stop)
