"""The state feeds start at once but apply in order: the registry is read to its end before
any crisis declaration is verified against its keys (no Kafka: the two followers' halves)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.errors import ConfigError
from broker.pep.state_feeds import StateFeeds


class _Half:
    """A follower's two halves and its stop, each noted in `events` as it happens."""

    def __init__(self, name: str, events: list[str], *, fail_connect: bool = False) -> None:
        self.name = name
        self.events = events
        self.connecting = asyncio.Event()
        self.peer: _Half | None = None
        self.fail_connect = fail_connect

    async def connect(self) -> None:
        self.connecting.set()
        assert self.peer is not None
        # Connected only once the other one is connecting too: in turn, this never ends.
        await asyncio.wait_for(self.peer.connecting.wait(), timeout=10)
        if self.fail_connect:
            raise ConfigError(f"topic of {self.name} does not exist")
        self.events.append(f"{self.name} connected")

    async def catch_up(self) -> None:
        await asyncio.sleep(0)  # a round trip: the other would run now if it could
        self.events.append(f"{self.name} caught up")

    async def stop(self) -> None:
        self.events.append(f"{self.name} stopped")


def _feeds(events: list[str], *, fail: str = "") -> StateFeeds:
    registry = _Half("registry", events, fail_connect=fail == "registry")
    crisis = _Half("crisis", events, fail_connect=fail == "crisis")
    registry.peer, crisis.peer = crisis, registry
    fakes: Any = (registry, crisis)
    return StateFeeds(None, registry=fakes[0], crisis=fakes[1])  # type: ignore[arg-type]


async def test_both_connect_at_once_and_the_registry_is_read_before_any_crisis() -> None:
    events: list[str] = []
    await _feeds(events).start()
    assert sorted(events[:2]) == ["crisis connected", "registry connected"]
    assert events[2:] == ["registry caught up", "crisis caught up"]


@pytest.mark.parametrize("failing", ["registry", "crisis"])
async def test_a_feed_that_cannot_connect_fails_the_start_and_both_are_stopped(
    failing: str,
) -> None:
    events: list[str] = []
    with pytest.raises(ConfigError, match=f"topic of {failing} does not exist"):
        await _feeds(events, fail=failing).start()
    assert not any("caught up" in e for e in events)
    assert {"registry stopped", "crisis stopped"} <= set(events)
