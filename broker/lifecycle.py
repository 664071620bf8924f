"""The explicit lifecycle every long-lived component follows: start(), stop(), `async with`."""

from __future__ import annotations

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
