"""Replay guards: the receive side refuses a message id it has accepted before.

An id only needs remembering until its envelope expires: after that the
validity check refuses the record anyway, so `prune` keeps the store bounded.
One guard serves one receiving participant.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol

from broker.errors import Replay
from broker.files import private_file


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class ReplayGuard(Protocol):
    def seen(self, message_id: str) -> bool:
        """Whether `message_id` was accepted before (a cheap pre-check)."""
        ...

    def remember(self, message_id: str, expires: datetime) -> None:
        """Record `message_id` as accepted; raise Replay if it already was (atomic)."""
        ...

    def prune(self, now: datetime) -> int:
        """Forget ids whose envelopes expired before `now`; returns how many."""
        ...


class MemoryReplayGuard:
    """In-process guard: for tests and short-lived tools."""

    def __init__(self) -> None:
        self._expires: dict[str, int] = {}

    def seen(self, message_id: str) -> bool:
        return message_id in self._expires

    def remember(self, message_id: str, expires: datetime) -> None:
        if message_id in self._expires:
            raise Replay(f"message {message_id} was already received")
        self._expires[message_id] = _ms(expires)

    def prune(self, now: datetime) -> int:
        cutoff = _ms(now)
        old = [m for m, e in self._expires.items() if e < cutoff]
        for m in old:
            del self._expires[m]
        return len(old)

    def __len__(self) -> int:
        return len(self._expires)


class SqliteReplayGuard:
    """Persistent guard in one SQLite file: survives restarts (the subscriber's dedup store)."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        private_file(path)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen ("
            " message_id TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL) WITHOUT ROWID"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS seen_expiry ON seen(expires_ms)")

    def seen(self, message_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM seen WHERE message_id = ?", (message_id,)).fetchone()
        return row is not None

    def remember(self, message_id: str, expires: datetime) -> None:
        try:
            self._db.execute(
                "INSERT INTO seen (message_id, expires_ms) VALUES (?, ?)",
                (message_id, _ms(expires)),
            )
        except sqlite3.IntegrityError:
            raise Replay(f"message {message_id} was already received") from None

    def prune(self, now: datetime) -> int:
        cur = self._db.execute("DELETE FROM seen WHERE expires_ms < ?", (_ms(now),))
        return cur.rowcount

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM seen").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteReplayGuard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
