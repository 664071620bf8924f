"""The explicit lifecycle every long-lived component follows: start(), stop(), `async with`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self


class Service:
    """Subclasses define `start` and `stop`; `async with` calls them."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def stop_together(*stops: Callable[[], Awaitable[None]]) -> None:
    """Run independent `stop`s at once, every one to its end even if another fails; then
    raise the first failure. A Kafka client's stop can wait out a long poll (half a second):
    in turn, a component's clients add up to what a one-shot verb waits for at its exit."""
    results = await asyncio.gather(*(stop() for stop in stops), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def start_together(*starts: Callable[[], Awaitable[None]]) -> None:
    """Run independent `start`s at once (each its own Kafka round trips), every one to its
    end even if another fails; then raise the first failure (the caller stops them all)."""
    results = await asyncio.gather(*(start() for start in starts), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
