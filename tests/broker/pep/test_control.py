"""The crisis board keeps following jcu.control through errors, and fails closed meanwhile."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from broker.pep import control
from broker.pep.control import CrisisBoard, CrisisDeclaration


class _FlakyFeed:
    """Stands in for the board's consumer: fails `failures` times, then has nothing new."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def getmany(self, timeout_ms: int) -> dict[Any, list[Any]]:
        self.calls += 1
        await asyncio.sleep(0)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("broker went away")
        return {}


def _declared(incident: str) -> CrisisDeclaration:
    return CrisisDeclaration(
        id="d-1",
        incident=incident,
        member_states=("FR", "DE"),
        active=True,
        declared_by="eu-cyclone",
        signer_key_id="k",
        created=datetime(2026, 11, 28, tzinfo=UTC),
    )


async def test_a_failing_feed_suspends_crisis_sharing_until_it_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(control, "FOLLOW_RETRY_MIN", 0.01)
    board = CrisisBoard(None, "unused")  # type: ignore[arg-type]  # never opens anything here
    board._state["INC-1"] = _declared("INC-1")
    feed = _FlakyFeed(failures=3)
    board._consumer = feed
    assert board.active_incidents() == {"INC-1"}

    task = asyncio.get_running_loop().create_task(board._follow())
    try:
        for _ in range(100):
            if not board.healthy:
                break
            await asyncio.sleep(0)
        assert not board.healthy
        assert board.active_incidents() == frozenset()  # fail closed, and the task lives on
        while feed.calls < 5:
            await asyncio.sleep(0.005)
        assert board.healthy and not task.done()
        assert board.active_incidents() == {"INC-1"}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
