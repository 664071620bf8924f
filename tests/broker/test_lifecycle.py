"""Starting and stopping independent components together (`broker.lifecycle`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from broker.lifecycle import start_together, stop_together


def step(
    name: str, done: list[str], gate: asyncio.Event, fail: bool = False
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await gate.wait()  # every step is under way before any finishes: they run at once
        done.append(name)
        if fail:
            raise RuntimeError(f"{name} failed")

    return run


@pytest.mark.parametrize("together", [start_together, stop_together])
async def test_every_step_runs_to_its_end_and_the_first_failure_is_raised(
    together: Callable[..., Awaitable[None]],
) -> None:
    done: list[str] = []
    gate = asyncio.Event()
    steps = [
        step("feeds", done, gate),
        step("audit", done, gate, fail=True),
        step("producer", done, gate, fail=True),
    ]
    running = asyncio.ensure_future(together(*steps))
    await asyncio.sleep(0)
    assert done == []  # all waiting at the gate, none finished
    gate.set()
    with pytest.raises(RuntimeError, match="audit failed"):
        await running
    assert sorted(done) == ["audit", "feeds", "producer"]


async def test_nothing_fails_nothing_is_raised() -> None:
    done: list[str] = []
    gate = asyncio.Event()
    gate.set()
    await stop_together(step("a", done, gate), step("b", done, gate))
    assert sorted(done) == ["a", "b"]
