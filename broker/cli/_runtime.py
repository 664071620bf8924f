"""Running async enforcement points from click verbs: signals and one event loop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


OnStop = Callable[[Callable[[], None]], None]


def run_until_signalled(main: Callable[[OnStop], Awaitable[T]]) -> T:
    """Run `main(on_stop)`; callbacks given to `on_stop` run on SIGTERM or SIGINT.

    A service registers its `request_stop`, so a signal finishes in-flight work,
    commits and checkpoints instead of dying mid-record.
    """

    async def runner() -> T:
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        holder: list[Callable[[], None]] = []

        def on_signal() -> None:
            stop_requested.set()
            for cb in holder:
                cb()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)

        def register(cb: Callable[[], None]) -> None:
            holder.append(cb)
            if stop_requested.is_set():
                cb()

        try:
            return await main(register)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    return asyncio.run(runner())
