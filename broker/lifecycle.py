"""The explicit lifecycle every long-lived component follows: start(), stop(), `async with`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self, TypeVar

T = TypeVar("T")

#: Seconds a stop goes on once whoever awaits it is cancelled (`to_the_end`).
STOP_GRACE = 10.0


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
        await to_the_end(self.stop())


async def to_the_end(step: Awaitable[T], grace: float = STOP_GRACE) -> T:
    """Await `step` (a stop, a client's start) to its end even if the caller is cancelled
    meanwhile, then raise the cancel. A clean-up cut short by a second cancel (a run
    abandoned while a failed start was being undone) leaves Kafka connections open.
    Something stuck (Kafka not answering) is cancelled after `grace` more seconds."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await asyncio.wait({task}, timeout=grace)
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            task.exception()  # retrieved: the cancel is what the caller hears of
        raise


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
