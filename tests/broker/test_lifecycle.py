"""Starting and stopping independent components together (`broker.lifecycle`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from broker.lifecycle import start_together, stop_together, to_the_end


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


async def test_a_clean_up_runs_to_its_end_through_a_second_cancel() -> None:
    # A failed start being undone when the run that awaited it is abandoned: the second
    # cancel must not cut the stop short (its Kafka clients would stay open).
    stopped: list[str] = []
    cleaning = asyncio.Event()

    async def stop() -> None:
        cleaning.set()
        await asyncio.sleep(0.05)
        stopped.append("stopped")

    async def start() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await to_the_end(stop())
            raise

    starting = asyncio.ensure_future(start())
    await asyncio.sleep(0)
    starting.cancel()
    await cleaning.wait()
    starting.cancel()  # the second cancel lands in the clean-up
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert stopped == ["stopped"]


async def test_a_step_that_finishes_returns_its_value() -> None:
    async def step() -> str:
        return "started"

    assert await to_the_end(step()) == "started"


async def test_a_stuck_step_is_cancelled_after_the_grace() -> None:
    stuck: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(to_the_end(stuck, grace=0.05))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, timeout=5)
    assert stuck.cancelled()
