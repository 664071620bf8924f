"""The subscriber's delivery ledger: which message ids reached the sink, from where.

It is the persistent dedup store (stdlib sqlite3, survives restarts) and it
tells a redelivery from a replay: the same message id at the same topic,
partition and offset is Kafka handing us again a record whose offset we did
not commit before a crash (drop it quietly); the same id anywhere else is a
replay (reject it). It plugs into the envelope's `Opener` as its replay guard,
but records a message only after the sink confirmed it, so a crash between
decrypting and delivering redelivers instead of losing.

It also keeps, per topic partition, the position up to which every record is
settled (delivered, skipped, or refused and dead-lettered), written in the
same transaction as the batch's deliveries. The subscriber starts from there,
not from the consumer group's committed offset: an offset committed ahead of
it (by mistake, or by someone who may commit for the group) cannot make it
skip records unseen.

A batch's deliveries can be set aside (`set_aside`) to be committed later, while the
next batch stages its own: the subscriber settles one batch while it opens the next.
Until then they are seen as staged ones are, and each commit writes only its own.

And where the receiving audit log stood at the last commit (the audit mark):
a batch's decisions are audited before the ledger commits, so after a crash
the subscriber reads its audit log back from that mark (from the log's own
journal: docs/audit.md) and learns which records of the redelivered batch
were already decided, instead of deciding (and auditing) them twice.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from broker import faults
from broker.errors import StateError
from broker.files import private_file


@dataclass(frozen=True, slots=True)
class Position:
    topic: str
    partition: int
    offset: int


class Staged:
    """A batch's deliveries set aside for a later commit (`DeliveryLedger.set_aside`)."""

    __slots__ = ("deliveries",)

    def __init__(self, deliveries: dict[str, tuple[str, datetime, Position]]) -> None:
        self.deliveries = deliveries


#: Ids per query of `prefetch` (SQLite allows 32,766 parameters; a batch is 500).
_PREFETCH_CHUNK = 500


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


@contextlib.contextmanager
def _state_errors(path: Path, doing: str) -> Iterator[None]:
    """SQLite's and the disk's errors as one line saying what to do (never a traceback)."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and (
            "full" in text or "disk I/O" in text or "readonly" in text or "unable to open" in text
        ):
            raise StateError(
                f"the delivery ledger {path} could not be {doing} ({text}): free space or fix "
                "the directory's permissions, then run again; nothing more was committed"
            ) from None
        raise StateError(
            f"the delivery ledger {path} is unreadable ({text}): move it aside and run again "
            "with --rebuild-ledger (deliveries since the group's committed offsets come again "
            "into the sink, which keeps one copy of each)"
        ) from None
    except OSError as exc:
        raise StateError(
            f"the delivery ledger {path} could not be {doing} ({exc.strerror or exc}): free "
            "space or fix the directory's permissions, then run again; nothing more was "
            "committed"
        ) from None


class DeliveryLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        #: False when this open created the file: a new channel, or a ledger that was lost.
        self.existed = path.exists()
        with _state_errors(path, "opened"):
            faults.fail("ledger.open")
            private_file(path)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._open_schema()

        self._staged: dict[str, tuple[str, datetime, Position]] = {}
        #: Batches set aside, not yet committed (seen as staged ones are, oldest first).
        self._aside: list[Staged] = []
        # The subscriber asks `position(id)` and then, opening the record, the opener asks
        # `seen(id)`: the second question is answered from the first one's row, once.
        self._looked_up: tuple[str, bool] | None = None
        # A batch's ids looked up in one query (`prefetch`), until the batch is committed.
        self._prefetched: dict[str, Position | None] = {}
        self._commits = 0

    def _open_schema(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS delivered ("
            " message_id TEXT PRIMARY KEY, sender TEXT NOT NULL,"
            " topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,"
            " expires_ms INTEGER NOT NULL, retracted INTEGER NOT NULL DEFAULT 0)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS settled ("
            " topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,"
            " PRIMARY KEY (topic, partition))"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        # A corrupt file can open and still fail on its first real read.
        self._db.execute("SELECT COUNT(*) FROM settled").fetchone()

    # -- the envelope's ReplayGuard protocol --------------------------------
    def _pending(self, message_id: str) -> tuple[str, datetime, Position] | None:
        """The staged or set-aside delivery of `message_id`, not yet committed, if any."""
        found = self._staged.get(message_id)
        if found is None:
            for staged in self._aside:
                found = staged.deliveries.get(message_id)
                if found is not None:
                    break
        return found

    def seen(self, message_id: str) -> bool:
        if self._pending(message_id) is not None:
            return True
        last, self._looked_up = self._looked_up, None
        if last is not None and last[0] == message_id:
            return last[1]
        row = self._db.execute(
            "SELECT 1 FROM delivered WHERE message_id = ?", (message_id,)
        ).fetchone()
        return row is not None

    def remember(self, message_id: str, expires: datetime) -> None:
        """Deliberately nothing: the subscriber stages, then commits once the sink has it."""

    def prune(self, now: datetime) -> int:
        """Forget ids whose envelopes expired: the opener rejects those as expired anyway."""
        self._looked_up = None
        self._prefetched = {}
        cur = self._db.execute("DELETE FROM delivered WHERE expires_ms < ?", (_ms(now),))
        return cur.rowcount

    # -- delivery bookkeeping ------------------------------------------------
    def prefetch(self, message_ids: Iterable[str]) -> None:
        """Look up the ids of the batch in hand in one query instead of one each: a
        record's key is its message id, so the subscriber passes the keys before it
        decodes anything. `position` answers those from memory until `commit`; an id
        not passed here is still looked up on its own."""
        ids = [m for m in dict.fromkeys(message_ids) if self._pending(m) is None]
        known: dict[str, Position | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), _PREFETCH_CHUNK):
            chunk = ids[start : start + _PREFETCH_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT message_id, topic, partition, offset FROM delivered"  # noqa: S608 - "?"s
                f" WHERE message_id IN ({marks})",
                chunk,
            )
            for mid, topic, partition, offset in rows:
                known[mid] = Position(topic, int(partition), int(offset))
        self._prefetched = known

    def position(self, message_id: str) -> Position | None:
        pending = self._pending(message_id)
        if pending is not None:
            return pending[2]
        if message_id in self._prefetched:
            where = self._prefetched[message_id]
            self._looked_up = (message_id, where is not None)
            return where
        row = self._db.execute(
            "SELECT topic, partition, offset FROM delivered WHERE message_id = ?", (message_id,)
        ).fetchone()
        self._looked_up = (message_id, row is not None)
        return Position(row[0], int(row[1]), int(row[2])) if row else None

    def sender_of(self, message_id: str) -> str | None:
        pending = self._pending(message_id)
        if pending is not None:
            return pending[0]
        row = self._db.execute(
            "SELECT sender FROM delivered WHERE message_id = ?", (message_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def stage(self, message_id: str, sender: str, expires: datetime, where: Position) -> None:
        """Note a delivery of the batch in hand: seen at once, durable at `commit`."""
        self._staged.setdefault(message_id, (sender, expires, where))

    def set_aside(self) -> Staged:
        """Take the batch in hand's deliveries out of the staged ones, to `commit(...,
        staged=...)` later while the next batch stages its own; seen meanwhile."""
        staged = Staged(self._staged)
        self._staged = {}
        self._aside.append(staged)
        return staged

    def commit(
        self,
        settled: Mapping[tuple[str, int], int] | None = None,
        audit_mark: tuple[int, int] | None = None,
        audit_point: str | None = None,
        *,
        staged: Staged | None = None,
    ) -> None:
        """Write the staged deliveries (or those set aside as `staged`), the batch's settled
        positions ((topic, partition) -> next offset) and where the audit log (of
        enforcement point `audit_point`) now stands, in one transaction (after the sink
        flushed and the batch's decisions were audited)."""
        self._looked_up = None
        self._prefetched = {}
        deliveries = self._staged if staged is None else staged.deliveries
        if not deliveries and not settled and audit_mark is None:
            if staged is not None:
                self._aside.remove(staged)
            return
        rows = [
            (mid, sender, w.topic, w.partition, w.offset, _ms(expires))
            for mid, (sender, expires, w) in deliveries.items()
        ]
        self._commits += 1
        with _state_errors(self.path, "written"):
            faults.fail("ledger.commit", self._commits)
            self._write(rows, settled, audit_mark, audit_point)
        if staged is None:
            self._staged.clear()
        else:
            self._aside.remove(staged)

    def _write(
        self,
        rows: list[tuple[str, str, str, int, int, int]],
        settled: Mapping[tuple[str, int], int] | None,
        audit_mark: tuple[int, int] | None,
        audit_point: str | None,
    ) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO delivered (message_id, sender, topic, partition, offset,"
                " expires_ms) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._db.executemany(
                "INSERT INTO settled (topic, partition, next_offset) VALUES (?, ?, ?)"
                " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset"
                " WHERE excluded.next_offset > settled.next_offset",
                [(t, p, o) for (t, p), o in (settled or {}).items()],
            )
            if audit_mark is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('audit_mark', ?)",
                    (json.dumps(list(audit_mark)),),
                )
                if audit_point is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO meta (name, value) VALUES ('audit_point', ?)",
                        (audit_point,),
                    )

    def settled(self, topic: str, partition: int) -> int | None:
        """The offset up to which this ledger settled `topic`/`partition` (every record before
        it delivered, skipped or refused), or None if it never read there. A ledger from
        before settled positions were kept answers with the offset after its last delivery."""
        row = self._db.execute(
            "SELECT next_offset FROM settled WHERE topic = ? AND partition = ?", (topic, partition)
        ).fetchone()
        if row is not None:
            return int(row[0])
        row = self._db.execute(
            "SELECT MAX(offset) FROM delivered WHERE topic = ? AND partition = ?",
            (topic, partition),
        ).fetchone()
        return int(row[0]) + 1 if row and row[0] is not None else None

    def audit_mark(self) -> tuple[int, int] | None:
        """(index, offset) where the audit log stood at the last commit, if ever set."""
        row = self._db.execute("SELECT value FROM meta WHERE name = 'audit_mark'").fetchone()
        if row is None:
            return None
        index, offset = json.loads(row[0])
        return int(index), int(offset)

    def audit_point(self) -> str | None:
        """The enforcement point whose log the audit mark is in (None: a ledger from before
        channels had their own, whose mark is in `<participant>/receive`)."""
        row = self._db.execute("SELECT value FROM meta WHERE name = 'audit_point'").fetchone()
        return str(row[0]) if row is not None else None

    def mark_retracted(self, message_id: str) -> None:
        self._looked_up = None
        self._db.execute("UPDATE delivered SET retracted = 1 WHERE message_id = ?", (message_id,))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM delivered").fetchone()[0])

    def has_settled(self) -> bool:
        """Whether this ledger ever settled a position (a channel that has delivered)."""
        return self._db.execute("SELECT 1 FROM settled LIMIT 1").fetchone() is not None

    def close(self) -> None:
        self._db.close()
