"""Replay guards: in memory and persistent (SQLite), with pruning after expiry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from broker.envelope import MemoryReplayGuard, ReplayGuard, SqliteReplayGuard
from broker.errors import Replay
from tests.broker._pki import T0


@pytest.fixture(params=["memory", "sqlite"])
def guard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReplayGuard]:
    if request.param == "memory":
        yield MemoryReplayGuard()
        return
    g = SqliteReplayGuard(tmp_path / "replay" / "eda.sqlite")
    yield g
    g.close()


def test_second_remember_is_a_replay(guard: ReplayGuard) -> None:
    assert not guard.seen("m1")
    guard.remember("m1", T0 + timedelta(days=1))
    assert guard.seen("m1")
    with pytest.raises(Replay):
        guard.remember("m1", T0 + timedelta(days=1))
    guard.remember("m2", T0 + timedelta(days=1))


def test_prune_forgets_only_expired_ids(guard: ReplayGuard) -> None:
    guard.remember("old", T0)
    guard.remember("new", T0 + timedelta(days=2))
    assert guard.prune(T0 + timedelta(days=1)) == 1
    assert not guard.seen("old") and guard.seen("new")


def test_sqlite_guard_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "eda.sqlite"
    with SqliteReplayGuard(path) as g:
        g.remember("m1", T0 + timedelta(days=1))
    with SqliteReplayGuard(path) as g:
        assert g.seen("m1")
        with pytest.raises(Replay):
            g.remember("m1", T0 + timedelta(days=1))
        assert len(g) == 1
