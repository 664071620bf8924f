"""The publisher's record of what it sent where, so it can retract a message later, and of
what it is about to send, so a restart after a crash can say what became of it.

Only routing facts are kept (type, labels, topics, recipients), never content,
and, for records that came from a source object (a STIX object, a MISP event),
that object's id, version and container, so a whole publication can be found
again (`jcu retract --file/--event`) and a later publication can tell whether
an object it refers to already reached a recipient.

A message is *pending* from before its decisions are audited until its send
outcome is audited; a publisher that finds pending messages when it starts
settles them (`broker.pep.recovery`). The audit log's position after the last
settled batch is kept too: where that recovery reads the log back from. One
index per participant serves every publisher of its node (`/publish`, the
assistance desk's `/assist`): pending messages and the audit mark are each
kept per enforcement point, so a publisher settles only what its own log
decided, reading its own log.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from broker.audit import AuditMark
from broker.envelope import Labels
from broker.files import private_file

#: How long the index keeps a message it sent: the longest validity an envelope may have
#: (`broker.envelope.sealer.MAX_VALIDITY`, 30 days) and a week more. After that no
#: receiver accepts any copy of it, so it is forgotten (`SentLog.prune`): the index is
#: bounded by this, not by history. `JCU_SENT_RETENTION_DAYS` sets another.
DEFAULT_RETENTION = timedelta(days=37)
RETENTION_ENV = "JCU_SENT_RETENTION_DAYS"
#: Messages added between two prunes of a long-running publisher.
PRUNE_EVERY = 10_000


@dataclass(frozen=True, slots=True)
class SentCopy:
    community: str
    topic: str
    recipients: tuple[str, ...]
    redacted_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceRef:
    """What a record was made from: the source object's id, its version, its container.

    STIX: (STIX id, `modified`, bundle id); MISP: (event uuid, `timestamp`, event uuid).
    """

    id: str
    version: str | None = None
    container: str | None = None


@dataclass(frozen=True, slots=True)
class SentMessage:
    message_id: str
    sender: str
    payload_type: str
    labels: Labels
    copies: tuple[SentCopy, ...]
    source: SourceRef | None = None
    #: The organisations denied it, each with the rules that decided.
    denied: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: When it was sent (ms since the epoch; 0 if not known), and whether it was retracted.
    sent_ms: int = 0
    retracted: bool = False

    @property
    def recipients(self) -> frozenset[str]:
        return frozenset(r for c in self.copies for r in c.recipients)


def retention_from_env(env: Mapping[str, str] | None = None) -> timedelta:
    """The sent index's retention: `JCU_SENT_RETENTION_DAYS` (a positive number of days),
    else `DEFAULT_RETENTION`."""
    from broker.errors import ConfigError

    raw = (os.environ if env is None else env).get(RETENTION_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION
    try:
        days = float(raw)
    except ValueError:
        days = 0.0
    if not days > 0:
        raise ConfigError(f"{RETENTION_ENV}={raw!r} is not a positive number of days")
    return timedelta(days=days)


class SentLog:
    """`point`: the enforcement point whose pending messages and audit mark this handle
    reads and writes (`<participant>/publish`); `retention`: how long a sent message is
    kept (default from the environment, `retention_from_env`)."""

    def __init__(self, path: Path, *, point: str, retention: timedelta | None = None) -> None:
        self._point = point
        self._mark_name = f"audit_mark {point}"
        self._retention = retention if retention is not None else retention_from_env()
        self._added = 0
        private_file(path)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # An index for retraction, not a record of truth (the audit log is): WAL with
        # NORMAL sync survives a crash of the process, and costs no fsync per message.
        self._db.execute("PRAGMA synchronous=NORMAL")
        # A publish batch of 100 writes hundreds of pages once the index is large (its ids
        # and object ids land on random pages of two indexes): at SQLite's default of 1,000
        # the WAL was copied back (and synced) every other batch or so. Every 10,000 pages
        # (a WAL of up to ~40 MB) copies a page rewritten by many batches once: 15-20 %
        # fewer bytes written a batch (`python -m bench.sent_index`). Recovery is unchanged.
        self._db.execute("PRAGMA wal_autocheckpoint=10000")
        self._db.executescript(
            # The source object each message was made from, in the message's own row: a
            # table of its own keyed by message id was a third index written at random
            # places per message (a third of the pages a publish batch wrote).
            "CREATE TABLE IF NOT EXISTS sent (message_id TEXT PRIMARY KEY, body TEXT NOT NULL,"
            " sent_ms INTEGER NOT NULL DEFAULT 0, retracted INTEGER NOT NULL DEFAULT 0,"
            " source_id TEXT, version TEXT, container TEXT);"
            # written by indexes before `reached()` read the copies; now only pruned
            "CREATE TABLE IF NOT EXISTS reached (source_id TEXT NOT NULL,"
            " recipient TEXT NOT NULL, message_id TEXT NOT NULL,"
            " PRIMARY KEY (source_id, recipient, message_id));"
            "CREATE TABLE IF NOT EXISTS pending (message_id TEXT PRIMARY KEY, body TEXT NOT NULL,"
            " created_ms INTEGER NOT NULL, point TEXT NOT NULL);"
            "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE IF NOT EXISTS produced (message_id TEXT NOT NULL, topic TEXT NOT NULL,"
            " recipients TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,"
            " PRIMARY KEY (message_id, topic, recipients));"
            "CREATE TABLE IF NOT EXISTS producing (message_id TEXT PRIMARY KEY);"
        )
        self._migrate()
        self._db.executescript(
            "CREATE INDEX IF NOT EXISTS sent_by_time ON sent (sent_ms);"
            "CREATE INDEX IF NOT EXISTS sent_by_source ON sent (source_id);"
            "CREATE INDEX IF NOT EXISTS sent_by_container ON sent (container);"
        )
        self.prune()

    def _migrate(self) -> None:
        """Bring an index an older version wrote to this schema, in one transaction."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(sent)")}
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
        if "source_id" in columns and "sources" not in tables:
            return
        self._db.execute("BEGIN")
        try:
            if "sent_ms" not in columns:  # from before the index was pruned
                self._db.execute("ALTER TABLE sent ADD COLUMN sent_ms INTEGER NOT NULL DEFAULT 0")
                self._db.execute("ALTER TABLE sent ADD COLUMN retracted INTEGER NOT NULL DEFAULT 0")
                self._db.execute("UPDATE sent SET sent_ms = ?", (_now_ms(),))
            if "source_id" not in columns:
                for column in ("source_id", "version", "container"):
                    self._db.execute(f"ALTER TABLE sent ADD COLUMN {column} TEXT")
            if "sources" in tables:  # from before the sources moved into their messages
                self._db.execute(
                    "UPDATE sent SET source_id = s.source_id, version = s.version,"
                    " container = s.container, retracted = max(sent.retracted, s.retracted)"
                    " FROM sources AS s WHERE s.message_id = sent.message_id"
                )
                self._db.execute("DROP TABLE sources")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @property
    def retention(self) -> timedelta:
        return self._retention

    def prune(self, now_ms: int | None = None) -> int:
        """Forget messages sent longer ago than the retention (and their sources); returns
        how many. Pending messages are never pruned: a restart settles them first."""
        cutoff = (now_ms if now_ms is not None else _now_ms()) - int(
            self._retention.total_seconds() * 1000
        )
        old = "SELECT message_id FROM sent WHERE sent_ms < ?"
        self._db.execute("BEGIN")
        try:
            # `old` is the constant subquery above; the cutoff is a parameter
            self._db.execute(f"DELETE FROM reached WHERE message_id IN ({old})", (cutoff,))  # noqa: S608
            gone = self._db.execute("DELETE FROM sent WHERE sent_ms < ?", (cutoff,)).rowcount
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return int(gone)

    def count(self) -> int:
        """Messages the index holds now."""
        return int(self._db.execute("SELECT count(*) FROM sent").fetchone()[0])

    def add(self, message: SentMessage) -> None:
        self.add_many([message])

    def add_many(
        self,
        messages: Iterable[SentMessage],
        *,
        settled: Iterable[str] = (),
        mark: AuditMark | None = None,
    ) -> None:
        """Remember messages for retraction, and forget the pending ones now `settled`
        (their outcome is audited), in one transaction; `mark`: where this point's audit
        log stands."""
        messages = list(messages)
        now = _now_ms()
        rows = [
            (m.message_id, _dumps(_body(m)), m.sent_ms or now, *_source_columns(m.source))
            for m in messages
        ]
        unsourced = [m.message_id for m in messages if m.source is None]
        self._db.execute("BEGIN")
        try:
            # A message added again without its source keeps the source it was sent for.
            kept = dict(self._sources_of(unsourced)) if unsourced else {}
            self._db.executemany(
                "INSERT OR REPLACE INTO sent (message_id, body, sent_ms, source_id, version,"
                " container) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (*row[:3], *_source_columns(kept[row[0]])) if row[0] in kept else row
                    for row in rows
                ],
            )
            gone = [(m,) for m in settled]
            self._db.executemany("DELETE FROM pending WHERE message_id = ?", gone)
            self._db.executemany("DELETE FROM produced WHERE message_id = ?", gone)
            self._db.executemany("DELETE FROM producing WHERE message_id = ?", gone)
            if mark is not None and not self._has_pending():
                self._set_mark(mark)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._added += len(messages)
        if self._added >= PRUNE_EVERY:
            self._added = 0
            self.prune()

    def messages_of(
        self, source_ids: Iterable[str] = (), *, container: str | None = None
    ) -> list[str]:
        """Ids of the messages sent for these source objects (or this container), oldest
        first, retracted ones left out."""
        ids = list(dict.fromkeys(source_ids))
        found: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found += [
                r[0]
                for r in self._db.execute(
                    # only "?" placeholders are formatted in
                    "SELECT message_id FROM sent WHERE retracted = 0 AND source_id IN"  # noqa: S608
                    f" ({','.join('?' * len(chunk))}) ORDER BY rowid",
                    chunk,
                )
            ]
        if container is not None:
            found += [
                r[0]
                for r in self._db.execute(
                    "SELECT message_id FROM sent WHERE retracted = 0 AND container = ?"
                    " ORDER BY rowid",
                    (container,),
                )
            ]
        return list(dict.fromkeys(found))

    def messages_for(self, sources: Iterable[SourceRef]) -> list[str]:
        """Ids of the messages sent for exactly these sources (id, version and container:
        an object shared in two bundles is two publications), oldest first, retracted
        ones left out: the publication of one file."""
        wanted = {(s.id, s.version, s.container) for s in sources}
        found = []
        for ids in _chunks(sorted({sid for sid, _, _ in wanted}), 500):
            rows = self._db.execute(
                "SELECT message_id, source_id, version, container FROM sent"  # noqa: S608 - "?"s
                f" WHERE retracted = 0 AND source_id IN ({','.join('?' * len(ids))})"
                " ORDER BY rowid",
                ids,
            ).fetchall()
            found += [r[0] for r in rows if (r[1], r[2], r[3]) in wanted]
        return list(dict.fromkeys(found))

    def reached(self, source_id: str, recipient: str) -> bool:
        """Whether a message made from `source_id` (any version) reached `recipient` and
        was not retracted since."""
        # Read from the messages' copies, not kept a row per recipient: those rows, in an
        # index by object id, were 40% of the pages a publish wrote (`reached`, filled by
        # indexes written before, is only pruned now; its rows say what the copies say).
        return any(
            recipient in copy["recipients"]
            for (body,) in self._db.execute(
                "SELECT body FROM sent WHERE source_id = ? AND retracted = 0",
                (source_id,),
            )
            for copy in orjson.loads(body)["copies"]
        )

    def begin(
        self, messages: Iterable[SentMessage], created_ms: int, *, mark: AuditMark | None = None
    ) -> None:
        """Note messages about to be decided and sent (before their decisions are audited);
        `mark`: where this point's audit log stands now, kept as the audit mark unless other
        messages are pending already (a restart reads the log back from the oldest)."""
        rows = [(m.message_id, _dumps(_body(m)), created_ms, self._point) for m in messages]
        self._db.execute("BEGIN")
        try:
            if mark is not None and not self._has_pending():
                self._set_mark(mark)
            self._db.executemany(
                "INSERT OR REPLACE INTO pending (message_id, body, created_ms, point)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def producing(self, message_ids: Iterable[str]) -> None:
        """Note pending messages about to be handed to Kafka: one a restart finds pending
        without this note was never sent."""
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT OR IGNORE INTO producing (message_id) VALUES (?)",
                [(m,) for m in message_ids],
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def was_producing(self, message_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM producing WHERE message_id = ?", (message_id,)
        ).fetchone()
        return row is not None

    def produced(self, copies: Iterable[tuple[str, str, tuple[str, ...], int, int]]) -> None:
        """Note where Kafka took copies of pending messages: (message id, topic, recipients,
        partition, offset). A restart that finds them pending knows they were sent, without
        reading the topics (an organisation may not read other communities')."""
        rows = [(m, t, _dumps(list(r)), p, o) for m, t, r, p, o in copies]
        if not rows:
            return
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO produced (message_id, topic, recipients, partition,"
                " offset) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def produced_of(self, message_id: str) -> dict[tuple[str, frozenset[str]], tuple[int, int]]:
        """(topic, recipients) -> (partition, offset) of the copies noted by `produced`."""
        return {
            (t, frozenset(json.loads(r))): (int(p), int(o))
            for t, r, p, o in self._db.execute(
                "SELECT topic, recipients, partition, offset FROM produced WHERE message_id = ?",
                (message_id,),
            )
        }

    def pending(self) -> list[tuple[SentMessage, int]]:
        """Messages this point begun but never settled (a crash): each with when it was
        begun (ms)."""
        rows = self._db.execute(
            "SELECT message_id, body, created_ms FROM pending WHERE point = ? ORDER BY created_ms",
            (self._point,),
        ).fetchall()
        return [(_message(mid, orjson.loads(body)), int(ms)) for mid, body, ms in rows]

    def _has_pending(self) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM pending WHERE point = ? LIMIT 1", (self._point,)
        ).fetchone()
        return row is not None

    def has_pending(self) -> bool:
        """Whether this point has messages begun and not settled."""
        return self._has_pending()

    def _set_mark(self, mark: AuditMark) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
            (self._mark_name, json.dumps([mark.index, mark.offset])),
        )

    def audit_mark(self) -> AuditMark | None:
        """Where this point's audit log stood after its last settled batch."""
        row = self._db.execute(
            "SELECT value FROM meta WHERE name = ?", (self._mark_name,)
        ).fetchone()
        if row is None:
            return None
        index, offset = json.loads(row[0])
        return AuditMark(int(index), int(offset))

    def mark_retracted(self, message_id: str) -> None:
        self._db.execute("UPDATE sent SET retracted = 1 WHERE message_id = ?", (message_id,))

    def get(self, message_id: str) -> SentMessage | None:
        row = self._db.execute(
            "SELECT body, sent_ms, retracted, source_id, version, container FROM sent"
            " WHERE message_id = ?",
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        message = _message(message_id, orjson.loads(row[0]))
        return dataclasses.replace(
            message,
            source=SourceRef(*row[3:]) if row[3] is not None else message.source,
            sent_ms=int(row[1]),
            retracted=bool(row[2]),
        )

    def _sources_of(self, message_ids: list[str]) -> Iterable[tuple[str, SourceRef]]:
        for ids in _chunks(message_ids, 500):
            for mid, sid, version, container in self._db.execute(
                "SELECT message_id, source_id, version, container FROM sent"  # noqa: S608 - "?"s
                f" WHERE source_id IS NOT NULL AND message_id IN ({','.join('?' * len(ids))})",
                ids,
            ):
                yield mid, SourceRef(sid, version, container)

    def close(self) -> None:
        self._db.close()


def _source_columns(source: SourceRef | None) -> tuple[str | None, str | None, str | None]:
    return (source.id, source.version, source.container) if source else (None, None, None)


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _message(message_id: str, body: dict[str, Any]) -> SentMessage:
    source = body.get("source")
    return SentMessage(
        message_id=message_id,
        sender=body["sender"],
        payload_type=body["payload_type"],
        labels=Labels.from_avro(body["labels"]),
        copies=tuple(
            SentCopy(
                c["community"], c["topic"], tuple(c["recipients"]), tuple(c["redacted_fields"])
            )
            for c in body["copies"]
        ),
        source=SourceRef(*source) if source is not None else None,
        denied=tuple((org, tuple(rules)) for org, rules in body.get("denied", ())),
    )


def _body(message: SentMessage) -> dict[str, Any]:
    """A message's routing facts as JSON (its source too: a pending message keeps it for
    the index of what was sent once its copies are found)."""
    source = message.source
    return {
        "sender": message.sender,
        "payload_type": message.payload_type,
        "labels": message.labels.to_avro(),
        "copies": [
            {
                "community": c.community,
                "topic": c.topic,
                "recipients": list(c.recipients),
                "redacted_fields": list(c.redacted_fields),
            }
            for c in message.copies
        ],
        **({"source": [source.id, source.version, source.container]} if source else {}),
        **(
            {"denied": [[org, list(rules)] for org, rules in message.denied]}
            if message.denied
            else {}
        ),
    }


def _dumps(value: Any) -> str:
    """Compact JSON text (orjson: a body per message is written twice per publish). What
    any JSON reader reads back; bodies an older index wrote with `json.dumps` read the same."""
    return orjson.dumps(value).decode()


def _now_ms() -> int:
    return int(time.time() * 1000)
