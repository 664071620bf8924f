"""A state-topic follower keeps going through errors and says when it is behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker.kafka import follower as follower_module
from broker.kafka.follower import TopicFollower
from broker.pep.control import CrisisBoard, CrisisDeclaration
from tests.waiting import until


class _FlakyFeed:
    """Stands in for the follower's consumer: fails `failures` times, then yields one record."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    async def getmany(self, timeout_ms: int) -> dict[Any, list[Any]]:
        await asyncio.sleep(0)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("broker went away")
        record = type("R", (), {"key": b"k", "value": b"v"})()
        return {"tp": [record]}


async def test_errors_mark_the_follower_unhealthy_and_it_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(follower_module, "RETRY_MIN", 0.01)
    applied: list[tuple[bytes | None, bytes | None]] = []
    follower: TopicFollower[tuple[bytes | None, bytes]] = TopicFollower(
        "unused", "jcu.control", lambda k, v: (k, v), applied.append
    )
    follower._consumer = _FlakyFeed(failures=3)
    task = asyncio.get_running_loop().create_task(follower._follow())
    try:
        for _ in range(200):
            if not follower.healthy:
                break
            await asyncio.sleep(0)
        assert not follower.healthy and not applied
        await until(lambda: applied, "the record after the retries", every=0.005)
        assert applied[0] == (b"k", b"v")
        assert follower.healthy and not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_the_crisis_board_fails_closed_while_its_feed_is_unhealthy() -> None:
    declared = datetime(2026, 11, 28, tzinfo=UTC)
    # No context: this board never opens anything here.
    board = CrisisBoard(None, "unused", clock=lambda: declared)  # type: ignore[arg-type]
    board._state["INC-1"] = CrisisDeclaration(
        id="d-1",
        incident="INC-1",
        member_states=("FR", "DE"),
        active=True,
        declared_by="eu-cyclone",
        signer_key_id="k",
        created=declared,
        expires=declared + timedelta(days=7),
    )
    assert board.active_incidents() == {"INC-1"}
    board._feed._failing = True
    assert board.active_incidents() == frozenset() and not board.healthy


def test_a_record_every_follower_refuses_is_reported_once_with_a_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two followers of one topic in one command (a publisher's board and a preflight's)
    refuse the same forged record: one warning, saying what to do; both count it."""
    from broker import logs
    from broker.errors import JcuError

    def forged(key: bytes | None, value: bytes) -> None:
        raise JcuError("signed by a key the registry does not hold")

    logs.configure("console", "WARNING")
    followers = [TopicFollower("unused", "jcu.control", forged, print) for _ in range(2)]
    for f in followers:
        f.receive(b"INC-1", b"forged")
    err = capsys.readouterr().err
    assert err.count("state record refused") == 1, err
    assert "jcu registry sync" in err
    assert all(f.rejected == [(b"INC-1", "malformed")] for f in followers)
    followers[0].receive(b"INC-2", b"forged")  # another record is another warning
    assert capsys.readouterr().err.count("state record refused") == 1
    logs.configure("console", "WARNING")  # the next command reports it again
    followers[0].receive(b"INC-1", b"forged")
    assert capsys.readouterr().err.count("state record refused") == 1
