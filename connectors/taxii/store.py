"""What one participant has received, kept as STIX 2.1 objects for its TAXII server.

A sink of the subscriber: `deliver()` takes the STIX objects of one stream (a
topic such as `jcu.civilian.indicators`) and returns once they are committed.
Each stream is one TAXII collection, with a deterministic id (uuid5 of the
topic name). The store assigns `date_added` itself, strictly increasing per
collection at microsecond precision, because TAXII's `added_after` and `next`
rely on a total order that never goes back, even across restarts or a clock
stepping backwards. A version is keyed by the object's `modified` (else
`created`), so delivering the same id and version twice keeps one row.

One SQLite file (WAL) per participant: the file records whose it is, so a
server for P can never open Q's store by mistake.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.clock import Clock
from broker.errors import ConfigError, MalformedRecord
from broker.files import private_file
from connectors.taxii.timestamps import format_us, parse_us, to_us

#: Namespace of collection ids: uuid5(COLLECTION_NAMESPACE, topic).
COLLECTION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:jcu-broker:taxii:collection")
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS collections (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    last_added_us INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS objects (
    collection_id TEXT NOT NULL REFERENCES collections(id),
    object_id TEXT NOT NULL,
    object_type TEXT NOT NULL,
    version_key TEXT NOT NULL,
    version_us INTEGER NOT NULL,
    spec_version TEXT NOT NULL,
    date_added_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (collection_id, object_id, version_key)
)""",
    """CREATE TABLE IF NOT EXISTS object_owners (
    collection_id TEXT NOT NULL REFERENCES collections(id),
    object_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    PRIMARY KEY (collection_id, object_id)
)""",
    """CREATE TABLE IF NOT EXISTS message_objects (
    message_id TEXT NOT NULL,
    collection_id TEXT NOT NULL REFERENCES collections(id),
    object_id TEXT NOT NULL,
    PRIMARY KEY (message_id, collection_id, object_id)
)""",
    # The STIX spec versions a collection holds, so `match[spec_version]` is known to
    # select everything or nothing without reading the objects.
    """CREATE TABLE IF NOT EXISTS spec_versions (
    collection_id TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    PRIMARY KEY (collection_id, spec_version)
) WITHOUT ROWID""",
)
#: Columns added since the first version of the file, added to older files when opened.
#: `is_last`/`is_first`: this row is the newest/oldest live (not withdrawn) version of its
#: object, kept up to date on every write so `match[version]` is an index lookup.
_MIGRATIONS = (
    ("objects", "withdrawn", "INTEGER NOT NULL DEFAULT 0"),
    ("objects", "is_last", "INTEGER NOT NULL DEFAULT 0"),
    ("objects", "is_first", "INTEGER NOT NULL DEFAULT 0"),
    ("message_objects", "version_key", "TEXT"),
    ("message_objects", "withdraw", "INTEGER NOT NULL DEFAULT 0"),
)
#: Every query the server issues walks one of these in `date_added` order from its
#: cursor and stops after a page: its cost does not grow with the store. (The first
#: keeps `date_added` unique in a collection, so it is a cursor on its own.)
_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS objects_by_date_added"
    " ON objects (collection_id, date_added_us)",
    "CREATE INDEX IF NOT EXISTS objects_live"
    " ON objects (collection_id, date_added_us) WHERE withdrawn = 0",
    "CREATE INDEX IF NOT EXISTS objects_last"
    " ON objects (collection_id, date_added_us) WHERE is_last = 1",
    "CREATE INDEX IF NOT EXISTS objects_first"
    " ON objects (collection_id, date_added_us) WHERE is_first = 1",
    "CREATE INDEX IF NOT EXISTS objects_type_live"
    " ON objects (collection_id, object_type, date_added_us) WHERE withdrawn = 0",
    "CREATE INDEX IF NOT EXISTS objects_type_last"
    " ON objects (collection_id, object_type, date_added_us) WHERE is_last = 1",
    "CREATE INDEX IF NOT EXISTS objects_type_first"
    " ON objects (collection_id, object_type, date_added_us) WHERE is_first = 1",
    "CREATE INDEX IF NOT EXISTS objects_by_version"
    " ON objects (collection_id, version_us, date_added_us)",
)
#: Files before this version lack the version flags; opening one computes them once.
SCHEMA_VERSION = 2
_BACKFILL = (
    "UPDATE objects SET is_last = 0, is_first = 0",
    "UPDATE objects SET is_last = 1 WHERE rowid IN (SELECT r FROM (SELECT rowid AS r,"
    " ROW_NUMBER() OVER (PARTITION BY collection_id, object_id"
    " ORDER BY version_us DESC, date_added_us DESC) AS n FROM objects WHERE withdrawn = 0)"
    " WHERE n = 1)",
    "UPDATE objects SET is_first = 1 WHERE rowid IN (SELECT r FROM (SELECT rowid AS r,"
    " ROW_NUMBER() OVER (PARTITION BY collection_id, object_id"
    " ORDER BY version_us ASC, date_added_us ASC) AS n FROM objects WHERE withdrawn = 0)"
    " WHERE n = 1)",
    "INSERT OR IGNORE INTO spec_versions (collection_id, spec_version)"
    " SELECT DISTINCT collection_id, spec_version FROM objects",
)
#: SQLite's name for the index of the objects' primary key (collection, object id, version).
_PRIMARY_KEY_INDEX = "sqlite_autoindex_objects_1"
#: Recompute the version flags of one object (?1 collection, ?2 object id), reading only its
#: versions (left alone, SQLite would walk a date index of the whole collection to skip a sort).
_REFRESH_FLAGS = (
    "UPDATE objects SET"  # noqa: S608 - a constant index name; values are parameters
    f" is_last = (rowid IS (SELECT rowid FROM objects INDEXED BY {_PRIMARY_KEY_INDEX}"
    "  WHERE collection_id = ?1 AND object_id = ?2 AND withdrawn = 0"
    "  ORDER BY version_us DESC, date_added_us DESC LIMIT 1)),"
    f" is_first = (rowid IS (SELECT rowid FROM objects INDEXED BY {_PRIMARY_KEY_INDEX}"
    "  WHERE collection_id = ?1 AND object_id = ?2 AND withdrawn = 0"
    "  ORDER BY version_us ASC, date_added_us ASC LIMIT 1))"
    " WHERE collection_id = ?1 AND object_id = ?2"
)
#: Filter values a query may combine (match[type] values x match[version] values, or
#: match[id] values): each combination is one indexed walk.
MAX_FILTER_COMBINATIONS = 100
MAX_IDS = 1000
_COLUMNS = "object_id, object_type, version_key, spec_version, date_added_us, body"


#: Object types that are common definitions, not any sender's content (TLP markings).
_SHARED_TYPES = frozenset({"marking-definition", "extension-definition"})


def store_path(home: Path, participant: str) -> Path:
    """Where `participant`'s TAXII store lives under the state directory ($JCU_HOME)."""
    return home / "taxii" / f"{participant}.sqlite3"


def collection_id_for(topic: str) -> str:
    """The TAXII collection id of a stream: stable across stores, hosts and restarts."""
    return str(uuid.uuid5(COLLECTION_NAMESPACE, topic))


def _describe(topic: str) -> tuple[str, str]:
    parts = topic.split(".")
    exercise = len(parts) == 4 and parts[1] == "exercise"
    if exercise:
        parts = [parts[0], *parts[2:]]
    if len(parts) != 3 or parts[0] != "jcu":
        raise ConfigError(f"not a stream topic (jcu.<community>.<stream>): {topic!r}")
    community, stream = parts[1].replace("_", " "), parts[2]
    title = f"{community.capitalize()} community: {stream}"
    if exercise:
        title = f"EXERCISE - {title}"
    return title, f"STIX 2.1 objects received on {topic}"


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """One TAXII collection: a stream the participant receives."""

    id: str
    topic: str
    title: str
    description: str


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One version of one STIX object, as the store keeps it."""

    id: str
    type: str
    version: str
    spec_version: str
    date_added: str
    date_added_us: int
    body: dict[str, Any] = field(repr=False)

    @property
    def media_type(self) -> str:
        return STIX_MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class Delivery:
    """What `deliver()` committed: new versions, and versions it already had."""

    collection: CollectionInfo
    added: tuple[StoredObject, ...]
    duplicates: int


@dataclass(frozen=True, slots=True)
class ObjectQuery:
    """TAXII filters. `versions` holds `first`, `last`, `all` or timestamps (OR-ed)."""

    added_after_us: int | None = None
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    versions: tuple[str, ...] = ("last",)
    spec_versions: tuple[str, ...] = ()
    after_cursor_us: int | None = None
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class Page:
    """One page of results, oldest `date_added` first; `next_cursor` when `more`."""

    items: tuple[StoredObject, ...]
    more: bool
    next_cursor: int | None


class TaxiiStore:
    """Persistent STIX store of one participant. Open with `async with` or start()/stop()."""

    def __init__(self, path: Path, participant: str, *, clock: Clock | None = None) -> None:
        self._path = Path(path)
        self._participant = participant
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._conn: sqlite3.Connection | None = None
        self._cursor_key = ""
        self._lock = threading.Lock()

    @property
    def participant(self) -> str:
        return self._participant

    @property
    def path(self) -> Path:
        return self._path

    @property
    def cursor_key(self) -> bytes:
        """This store's secret for signing `next` cursors (set once the store is open)."""
        if not self._cursor_key:
            raise ConfigError("the TAXII store is not open: call start() first")
        return bytes.fromhex(self._cursor_key)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.open_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.close_sync)

    async def __aenter__(self) -> TaxiiStore:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def open_sync(self) -> None:
        """Open (creating or upgrading if needed) the file; blocking, for CLI and thread use."""
        if self._conn is not None:
            return
        private_file(self._path)  # decrypted objects: 0600 in a 0700 directory
        try:
            conn = sqlite3.connect(
                self._path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("BEGIN IMMEDIATE")
            try:
                owner = self._prepare_file(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the TAXII store {self._path}: {exc}") from None
        if owner != self._participant:
            conn.close()
            raise ConfigError(
                f"the TAXII store {self._path} belongs to {owner!r}, not {self._participant!r}"
            )
        (self._cursor_key,) = conn.execute(
            "SELECT value FROM meta WHERE key='cursor_key'"
        ).fetchone()
        self._conn = conn

    def _prepare_file(self, conn: sqlite3.Connection) -> str:
        """Create the tables, or bring an older file's up to date (in the open transaction)."""
        for statement in _SCHEMA:
            conn.execute(statement)
        for table, column, kind in _MIGRATIONS:
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        for statement in _INDEXES:
            conn.execute(statement)
        found = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if found is None or int(found[0]) < SCHEMA_VERSION:
            for statement in _BACKFILL:
                conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('participant', ?)",
            (self._participant,),
        )
        # The key that makes `next` cursors tamper-evident; never leaves the file.
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('cursor_key', ?)",
            (secrets.token_hex(32),),
        )
        (owner,) = conn.execute("SELECT value FROM meta WHERE key='participant'").fetchone()
        return str(owner)

    def close_sync(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ConfigError("the TAXII store is not open: call start() first")
        return self._conn

    # -- writing ---------------------------------------------------------------------------

    async def ensure_collection(self, topic: str) -> CollectionInfo:
        """Declare a stream the participant receives, so it shows even while empty."""
        return await asyncio.to_thread(self._ensure_collection_sync, topic)

    async def deliver(
        self,
        topic: str,
        objects: Iterable[Any],
        *,
        message_id: str | None = None,
        sender: str | None = None,
        withdraw_on_retract: bool = False,
    ) -> Delivery:
        """Add STIX objects (dicts, stix2 objects or bundles) received on `topic`.

        Returns once the transaction is committed. Raises `MalformedRecord` (and
        stores nothing) if any object is not a STIX object with a type and an id.
        With `message_id`, the broker message the objects came from is recorded,
        so `retract_message` can withdraw them later. With `sender`, an object id
        belongs to the first sender that delivered it: another sender's new version
        of it is refused (`MalformedRecord`), so no one can overwrite or, by retracting
        their own message, revoke someone else's object. Shared definitions (TLP
        marking definitions) belong to no one. With `withdraw_on_retract` (objects
        as their source wrote them, with the source's versions), retracting the
        message withdraws the versions it brought instead of adding a revoked one:
        a retraction is not a version of the source's object.
        """
        incoming = Incoming.of(
            topic,
            objects,
            message_id=message_id,
            sender=sender,
            withdraw_on_retract=withdraw_on_retract,
        )
        (outcome,) = await self.deliver_many([incoming])
        if isinstance(outcome, Refused):
            raise MalformedRecord(outcome.reason)
        return outcome

    async def deliver_many(self, batch: Sequence[Incoming]) -> tuple[Delivery | Refused, ...]:
        """Store many messages' objects in one transaction (one commit, one fsync).

        Each `Incoming` is all or nothing: one another sender owns is `Refused`
        (with the reason) and the others are stored. Outcomes are in `batch` order.
        """
        return await asyncio.to_thread(self._deliver_many_sync, tuple(batch))

    def owners(self, topic: str, object_ids: Iterable[str]) -> dict[str, str]:
        """Which sender owns each of `object_ids` in `topic`'s collection (unowned: absent).

        Blocking, but a primary-key read per id (microseconds, and WAL readers never
        wait for writers): cheaper on the event loop than a hop to a thread."""
        ids = tuple(dict.fromkeys(object_ids))
        return self._owners_sync(collection_id_for(topic), ids)

    async def retract(self, topic: str, object_id: str) -> StoredObject | None:
        """Keep a withdrawn object as a new version with `revoked: true`.

        Returns the new version, or None if the collection does not hold the
        object. Objects without `modified` (STIX cyber-observables) cannot carry
        `revoked`; they are left as they are and None is returned.
        """
        return await asyncio.to_thread(self._retract_sync, topic, object_id)

    async def retract_message(self, message_id: str) -> tuple[StoredObject, ...]:
        """Revoke every object delivered with `message_id` (idempotent); the new versions."""
        return await asyncio.to_thread(self._retract_message_sync, message_id)

    def _ensure_collection_sync(self, topic: str) -> CollectionInfo:
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                info = self._collection_row(db, topic)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return info

    def _collection_row(self, db: sqlite3.Connection, topic: str) -> CollectionInfo:
        cid = collection_id_for(topic)
        title, description = _describe(topic)
        db.execute(
            "INSERT OR IGNORE INTO collections (id, topic, title, description) VALUES (?,?,?,?)",
            (cid, topic, title, description),
        )
        return CollectionInfo(cid, topic, title, description)

    def _owners_sync(self, collection_id: str, ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._lock:
            db = self._db()
            for oid in ids:
                row = db.execute(
                    "SELECT sender FROM object_owners WHERE collection_id=? AND object_id=?",
                    (collection_id, oid),
                ).fetchone()
                if row is not None:
                    found[oid] = row[0]
        return found

    def _deliver_many_sync(self, batch: Sequence[Incoming]) -> tuple[Delivery | Refused, ...]:
        outcomes: list[Delivery | Refused] = []
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                infos: dict[str, CollectionInfo] = {}
                for item in batch:
                    info = infos.get(item.topic)
                    if info is None:
                        info = infos[item.topic] = self._collection_row(db, item.topic)
                    outcomes.append(self._deliver_one(db, info, item))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return tuple(outcomes)

    def _deliver_one(
        self, db: sqlite3.Connection, info: CollectionInfo, item: Incoming
    ) -> Delivery | Refused:
        rows = item.rows
        db.execute("SAVEPOINT message")
        try:
            if item.sender is not None:
                self._claim(db, info.id, rows, item.sender)
        except MalformedRecord as exc:
            db.execute("ROLLBACK TO message")
            db.execute("RELEASE message")
            return Refused(item.message_id, str(exc))
        added = self._insert(db, info.id, rows)
        if item.message_id is not None:
            withdraw = item.withdraw_on_retract
            db.executemany(
                "INSERT OR IGNORE INTO message_objects"
                " (message_id, collection_id, object_id, version_key, withdraw)"
                " VALUES (?,?,?,?,?)",
                [
                    (item.message_id, info.id, row.id, row.version_key, int(withdraw))
                    for row in rows
                    if not (withdraw and row.type in _SHARED_TYPES)
                ],
            )
        db.execute("RELEASE message")
        return Delivery(info, tuple(added), len(rows) - len(added))

    @staticmethod
    def _claim(
        db: sqlite3.Connection, collection_id: str, rows: Sequence[_Row], sender: str
    ) -> None:
        for row in rows:
            if row.type in _SHARED_TYPES:
                continue
            found = db.execute(
                "SELECT sender FROM object_owners WHERE collection_id=? AND object_id=?",
                (collection_id, row.id),
            ).fetchone()
            if found is not None and found[0] != sender:
                raise MalformedRecord(
                    f"{row.id} was delivered by {found[0]}; {sender} may not version it"
                )
            if found is None:
                db.execute(
                    "INSERT INTO object_owners (collection_id, object_id, sender) VALUES (?,?,?)",
                    (collection_id, row.id, sender),
                )

    def _insert(
        self, db: sqlite3.Connection, collection_id: str, rows: Sequence[_Row]
    ) -> list[StoredObject]:
        """Insert new versions in order, each with the next `date_added`, and keep the
        version flags right: a first version of an object is its first and last; an
        object with other versions has its flags recomputed."""
        (last,) = db.execute(
            "SELECT last_added_us FROM collections WHERE id=?", (collection_id,)
        ).fetchone()
        now = to_us(self._clock())
        added: list[StoredObject] = []
        has_versions: dict[str, bool] = {}
        refresh: dict[str, None] = {}
        for row in rows:
            exists = has_versions.get(row.id)
            if exists is None:
                exists = (
                    db.execute(
                        "SELECT 1 FROM objects WHERE collection_id=? AND object_id=? LIMIT 1",
                        (collection_id, row.id),
                    ).fetchone()
                    is not None
                )
            flag = 0 if exists else 1
            date_added = max(now, last + 1)
            version_us = row.version_us if row.version_key else date_added
            cur = db.execute(
                "INSERT OR IGNORE INTO objects (collection_id, object_id, object_type,"
                " version_key, version_us, spec_version, date_added_us, body, is_last, is_first)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    collection_id,
                    row.id,
                    row.type,
                    row.version_key,
                    version_us,
                    row.spec_version,
                    date_added,
                    row.body,
                    flag,
                    flag,
                ),
            )
            if cur.rowcount:
                last = date_added
                has_versions[row.id] = True
                if exists:
                    refresh[row.id] = None
                added.append(row.stored(date_added))
            else:
                has_versions[row.id] = exists
        if refresh:
            db.executemany(_REFRESH_FLAGS, [(collection_id, oid) for oid in refresh])
        if added:
            db.execute("UPDATE collections SET last_added_us=? WHERE id=?", (last, collection_id))
            db.executemany(
                "INSERT OR IGNORE INTO spec_versions (collection_id, spec_version) VALUES (?,?)",
                [(collection_id, v) for v in {o.spec_version for o in added}],
            )
        return added

    def _retract_sync(self, topic: str, object_id: str) -> StoredObject | None:
        cid = collection_id_for(topic)
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                added = self._revoke(db, cid, object_id)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return added

    def _retract_message_sync(self, message_id: str) -> tuple[StoredObject, ...]:
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                targets = db.execute(
                    "SELECT collection_id, object_id, version_key, withdraw FROM message_objects"
                    " WHERE message_id=? ORDER BY collection_id, object_id",
                    (message_id,),
                ).fetchall()
                revoked = []
                for cid, oid, version_key, withdraw in targets:
                    if withdraw:
                        cur = db.execute(
                            "UPDATE objects SET withdrawn=1 WHERE collection_id=?"
                            " AND object_id=? AND version_key=? AND withdrawn=0",
                            (cid, oid, version_key or ""),
                        )
                        if cur.rowcount:
                            db.execute(_REFRESH_FLAGS, (cid, oid))
                    else:
                        revoked.append(self._revoke(db, cid, oid))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return tuple(r for r in revoked if r is not None)

    def _revoke(
        self, db: sqlite3.Connection, collection_id: str, object_id: str
    ) -> StoredObject | None:
        latest = db.execute(
            "SELECT body, version_us, version_key FROM objects"
            " WHERE collection_id=? AND object_id=? AND is_last=1",
            (collection_id, object_id),
        ).fetchone()
        if latest is None or not latest[2]:
            return None
        body: dict[str, Any] = json.loads(latest[0])
        if body.get("revoked") is True:
            return None
        # STIX: a new version's `modified` is later than the previous one's; STIX
        # recommends millisecond precision.
        modified_us = max(to_us(self._clock()), int(latest[1]) + 1000)
        modified_us -= modified_us % 1000
        body.update(revoked=True, modified=format_us(modified_us)[:-4] + "Z")
        added = self._insert(db, collection_id, [_Row.of(body)])
        return added[0] if added else None

    # -- reading ---------------------------------------------------------------------------

    async def collections(self) -> list[CollectionInfo]:
        return await asyncio.to_thread(self._collections_sync)

    async def collection(self, collection_id: str) -> CollectionInfo | None:
        for info in await self.collections():
            if info.id == collection_id:
                return info
        return None

    async def query(self, collection_id: str, query: ObjectQuery) -> Page:
        """Objects (versions) of a collection matching the TAXII filters, one page."""
        return await asyncio.to_thread(self._query_sync, collection_id, query)

    async def has_object(self, collection_id: str, object_id: str) -> bool:
        return await asyncio.to_thread(self._has_object_sync, collection_id, object_id)

    def _collections_sync(self) -> list[CollectionInfo]:
        with self._lock:
            rows = (
                self._db()
                .execute("SELECT id, topic, title, description FROM collections ORDER BY topic")
                .fetchall()
            )
        return [CollectionInfo(*row) for row in rows]

    def _has_object_sync(self, collection_id: str, object_id: str) -> bool:
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT 1 FROM objects WHERE collection_id=? AND object_id=? AND withdrawn=0"
                    " LIMIT 1",
                    (collection_id, object_id),
                )
                .fetchone()
            )
        return row is not None

    def explain(self, collection_id: str, query: ObjectQuery) -> tuple[str, ...]:
        """SQLite's plan for each statement `query` issues (blocking; for tests and operators).

        Every line should name an index: a `SCAN` of a table would make the page
        cost grow with the store."""
        with self._lock:
            db = self._db()
            statements = _statements(collection_id, query, self._spec_versions(db, collection_id))
            return tuple(
                str(row[3])
                for sql, params in statements
                for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            )

    @staticmethod
    def _spec_versions(db: sqlite3.Connection, collection_id: str) -> frozenset[str]:
        rows = db.execute(
            "SELECT spec_version FROM spec_versions WHERE collection_id=?", (collection_id,)
        ).fetchall()
        return frozenset(row[0] for row in rows)

    def _query_sync(self, collection_id: str, q: ObjectQuery) -> Page:
        with self._lock:
            db = self._db()
            statements = _statements(collection_id, q, self._spec_versions(db, collection_id))
            results = [db.execute(sql, params).fetchall() for sql, params in statements]
        rows = _merge(results, q.limit + 1)
        more = len(rows) > q.limit
        items = tuple(_stored(*row) for row in rows[: q.limit])
        return Page(items, more, items[-1].date_added_us if more and items else None)


def _statements(
    collection_id: str, q: ObjectQuery, spec_present: frozenset[str]
) -> list[tuple[str, list[Any]]]:
    """The SQL one page of `q` runs: each statement walks one index in `date_added` order
    from the cursor and reads at most a page (match[id] reads only those objects' rows)."""
    start = max((v for v in (q.added_after_us, q.after_cursor_us) if v is not None), default=None)
    spec: tuple[str, ...] = ()
    if q.spec_versions:
        wanted = spec_present.intersection(q.spec_versions)
        if not wanted:
            return []
        if wanted != spec_present:
            spec = tuple(sorted(wanted))  # a store holding several STIX versions: row filter
    selectors = _selectors(q.versions)
    common: list[str] = []
    common_params: list[Any] = []
    if start is not None:
        common.append("date_added_us > ?")
        common_params.append(start)
    if spec:
        common.append(f"spec_version IN ({','.join('?' * len(spec))})")
        common_params += spec
    tail = " ORDER BY date_added_us LIMIT ?"
    if q.ids:
        where = [f"collection_id = ? AND object_id IN ({','.join('?' * len(q.ids))})"]
        params: list[Any] = [collection_id, *q.ids]
        where.append("withdrawn = 0")
        if q.types:
            where.append(f"object_type IN ({','.join('?' * len(q.types))})")
            params += q.types
        if selectors != ("all",):
            chosen = []
            for selector in selectors:
                if selector == "last":
                    chosen.append("is_last = 1")
                elif selector == "first":
                    chosen.append("is_first = 1")
                else:
                    chosen.append("version_us = ?")
                    params.append(selector)
            where.append(f"({' OR '.join(chosen)})")
        # the primary key's index: a walk over only these objects' versions, then a sort
        # constants and this method's own predicates, values only as "?" parameters
        sql = (
            f"SELECT {_COLUMNS} FROM objects INDEXED BY {_PRIMARY_KEY_INDEX}"  # noqa: S608
            f" WHERE {' AND '.join([*where, *common])}{tail}"
        )
        return [(sql, [*params, *common_params, q.limit + 1])]
    statements = []
    for kind in q.types or (None,):
        for selector in selectors:
            where = ["collection_id = ?"]
            params = [collection_id]
            if kind is not None:
                where.append("object_type = ?")
                params.append(kind)
            if selector == "all":
                index = "objects_type_live" if kind else "objects_live"
                where.append("withdrawn = 0")
            elif selector == "last":
                index = "objects_type_last" if kind else "objects_last"
                where.append("is_last = 1")
            elif selector == "first":
                index = "objects_type_first" if kind else "objects_first"
                where.append("is_first = 1")
            else:
                index = "objects_by_version"
                where.insert(1, "version_us = ?")
                params.insert(1, selector)
                where.append("withdrawn = 0")
            sql = (  # constants and our predicates; values only as "?" parameters
                f"SELECT {_COLUMNS} FROM objects INDEXED BY {index}"  # noqa: S608
                f" WHERE {' AND '.join([*where, *common])}{tail}"
            )
            statements.append((sql, [*params, *common_params, q.limit + 1]))
    return statements


def _selectors(versions: Sequence[str]) -> tuple[str | int, ...]:
    """match[version] values as `all`, `first`, `last` and microsecond timestamps."""
    if not versions:
        return ("last",)
    if "all" in versions:
        return ("all",)
    chosen: dict[str | int, None] = {}
    for v in versions:
        chosen[v if v in ("first", "last") else parse_us(v)] = None
    return tuple(chosen)


def _merge(results: Sequence[Sequence[Any]], limit: int) -> list[Any]:
    """Rows of several `date_added`-ordered walks, in order, each row once, at most `limit`."""
    if len(results) == 1:
        return list(results[0][:limit])
    merged: list[Any] = []
    previous = None
    for row in heapq.merge(*results, key=lambda r: r[4]):
        if row[4] == previous:  # date_added is unique in a collection: the same row
            continue
        previous = row[4]
        merged.append(row)
        if len(merged) == limit:
            break
    return merged


@dataclass(frozen=True, slots=True)
class Refused:
    """A message `deliver_many` did not store, and why."""

    message_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Incoming:
    """The STIX objects of one broker message, checked and ready to store.

    Make one with `Incoming.of`: it raises `MalformedRecord` for an object the store
    cannot keep, so a caller learns it before the batch is written."""

    topic: str
    rows: tuple[_Row, ...]
    message_id: str | None = None
    sender: str | None = None
    withdraw_on_retract: bool = False

    @classmethod
    def of(
        cls,
        topic: str,
        objects: Iterable[Any],
        *,
        message_id: str | None = None,
        sender: str | None = None,
        withdraw_on_retract: bool = False,
    ) -> Incoming:
        rows = tuple(_Row.of(o) for o in _flatten(objects))
        return cls(topic, rows, message_id, sender, withdraw_on_retract)

    @property
    def object_ids(self) -> tuple[str, ...]:
        """The ids a sender claims by delivering this (shared definitions excluded)."""
        return tuple(row.id for row in self.rows if row.type not in _SHARED_TYPES)


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    type: str
    version_key: str
    version_us: int
    spec_version: str
    body: str
    data: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def of(cls, obj: Any) -> _Row:
        serialize = getattr(obj, "serialize", None)
        data: Any = json.loads(serialize()) if callable(serialize) else obj
        if not isinstance(data, Mapping):
            raise MalformedRecord("a STIX object must be a JSON object")
        kind, oid = data.get("type"), data.get("id")
        if not isinstance(kind, str) or not isinstance(oid, str) or not oid.startswith(f"{kind}--"):
            raise MalformedRecord(f"not a STIX object with a type and a matching id: {oid!r}")
        version_key = data.get("modified") or data.get("created") or ""
        if not isinstance(version_key, str):
            raise MalformedRecord(f"{oid}: modified/created must be a timestamp string")
        try:
            version_us = parse_us(version_key) if version_key else 0
            body = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (ValueError, TypeError) as exc:
            raise MalformedRecord(f"{oid}: {exc}") from None
        spec_version = str(data.get("spec_version") or "2.1")
        return cls(oid, kind, version_key, version_us, spec_version, body, data)

    def stored(self, date_added_us: int) -> StoredObject:
        date_added = format_us(date_added_us)
        return StoredObject(
            id=self.id,
            type=self.type,
            version=self.version_key or date_added,
            spec_version=self.spec_version,
            date_added=date_added,
            date_added_us=date_added_us,
            body=json.loads(self.body) if not isinstance(self.data, dict) else dict(self.data),
        )


def _flatten(objects: Iterable[Any]) -> Iterable[Any]:
    for obj in objects:
        kind = obj.get("type") if isinstance(obj, Mapping) else None
        if kind == "bundle":
            yield from obj.get("objects") or ()
        else:
            yield obj


def _stored(
    oid: str, kind: str, version_key: str, spec_version: str, date_added_us: int, body: str
) -> StoredObject:
    date_added = format_us(date_added_us)
    return StoredObject(
        id=oid,
        type=kind,
        version=version_key or date_added,
        spec_version=spec_version,
        date_added=date_added,
        date_added_us=date_added_us,
        body=json.loads(body),
    )
