"""Waiting on a condition, never on a time: poll until it holds, fail with what was awaited
when the deadline passes. A deadline is a bound for a broken run, not a guess at how long
a healthy one takes, so it is generous."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: seconds: a bound for a run that went wrong, far above what a healthy run needs
DEADLINE = 120.0


async def until(
    condition: Callable[[], object], what: str, *, deadline: float = DEADLINE, every: float = 0.05
) -> None:
    """Return as soon as `condition()` is true; raise AssertionError naming `what` after
    `deadline` seconds (measured on the monotonic clock, not counted in polls)."""
    give_up = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {deadline:g} s waiting for {what}")
        await asyncio.sleep(every)
