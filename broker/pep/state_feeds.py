"""What every enforcement point follows besides its own traffic: who holds which keys
(`jcu.registry`, `KeyringFeed`) and which crises are declared (`jcu.control`,
`CrisisBoard`). Both the publisher and the subscriber start these first and stop
them last; keys come first, since crisis declarations are verified against them.
"""

from __future__ import annotations

from broker.lifecycle import Service
from broker.pep.context import PepContext
from broker.pep.control import CrisisBoard
from broker.trust.feed import KeyringFeed


class StateFeeds(Service):
    def __init__(
        self,
        ctx: PepContext,
        *,
        crisis: CrisisBoard | None = None,
        keyring: KeyringFeed | None = None,
    ) -> None:
        bootstrap = ctx.settings.bootstrap
        self.keyring = (
            keyring if keyring is not None else KeyringFeed.for_context(ctx.envelope, bootstrap)
        )
        self.crisis = crisis if crisis is not None else CrisisBoard(ctx.envelope, bootstrap)

    async def start(self) -> None:
        await self.keyring.start()
        try:
            await self.crisis.start()
        except BaseException:
            await self.keyring.stop()
            raise

    async def stop(self) -> None:
        await self.crisis.stop()
        await self.keyring.stop()
