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
import json
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
from connectors.taxii._timestamps import format_us, parse_us, to_us

#: Namespace of collection ids: uuid5(COLLECTION_NAMESPACE, topic).
COLLECTION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:jcu-broker:taxii:collection")
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    last_added_us INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS objects (
    collection_id TEXT NOT NULL REFERENCES collections(id),
    object_id TEXT NOT NULL,
    object_type TEXT NOT NULL,
    version_key TEXT NOT NULL,
    version_us INTEGER NOT NULL,
    spec_version TEXT NOT NULL,
    date_added_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (collection_id, object_id, version_key)
);
CREATE UNIQUE INDEX IF NOT EXISTS objects_by_date_added
    ON objects (collection_id, date_added_us);
CREATE TABLE IF NOT EXISTS object_owners (
    collection_id TEXT NOT NULL REFERENCES collections(id),
    object_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    PRIMARY KEY (collection_id, object_id)
);
CREATE TABLE IF NOT EXISTS message_objects (
    message_id TEXT NOT NULL,
    collection_id TEXT NOT NULL REFERENCES collections(id),
    object_id TEXT NOT NULL,
    PRIMARY KEY (message_id, collection_id, object_id)
);
"""
#: Columns added since the first version of the file, added to older files when opened.
_MIGRATIONS = (
    ("objects", "withdrawn", "INTEGER NOT NULL DEFAULT 0"),
    ("message_objects", "version_key", "TEXT"),
    ("message_objects", "withdraw", "INTEGER NOT NULL DEFAULT 0"),
)


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
        self._lock = threading.Lock()

    @property
    def participant(self) -> str:
        return self._participant

    @property
    def path(self) -> Path:
        return self._path

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
        """Open (creating if needed) the file; blocking, for CLI and thread use."""
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
            conn.executescript(_SCHEMA)
            for table, column, kind in _MIGRATIONS:
                have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('participant', ?)",
                (self._participant,),
            )
            (owner,) = conn.execute("SELECT value FROM meta WHERE key='participant'").fetchone()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the TAXII store {self._path}: {exc}") from None
        if owner != self._participant:
            conn.close()
            raise ConfigError(
                f"the TAXII store {self._path} belongs to {owner!r}, not {self._participant!r}"
            )
        self._conn = conn

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
        rows = [_normalise(o) for o in _flatten(objects)]
        return await asyncio.to_thread(
            self._deliver_sync, topic, rows, message_id, sender, withdraw_on_retract
        )

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

    def _deliver_sync(
        self,
        topic: str,
        rows: Sequence[_Incoming],
        message_id: str | None,
        sender: str | None,
        withdraw: bool = False,
    ) -> Delivery:
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                info = self._collection_row(db, topic)
                if sender is not None:
                    self._claim(db, info.id, rows, sender)
                added = self._insert(db, info.id, rows)
                if message_id is not None:
                    db.executemany(
                        "INSERT OR IGNORE INTO message_objects"
                        " (message_id, collection_id, object_id, version_key, withdraw)"
                        " VALUES (?,?,?,?,?)",
                        [
                            (message_id, info.id, row.id, row.version_key, int(withdraw))
                            for row in rows
                            if not (withdraw and row.type in _SHARED_TYPES)
                        ],
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return Delivery(info, tuple(added), len(rows) - len(added))

    @staticmethod
    def _claim(
        db: sqlite3.Connection, collection_id: str, rows: Sequence[_Incoming], sender: str
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
        self, db: sqlite3.Connection, collection_id: str, rows: Sequence[_Incoming]
    ) -> list[StoredObject]:
        (last,) = db.execute(
            "SELECT last_added_us FROM collections WHERE id=?", (collection_id,)
        ).fetchone()
        now = to_us(self._clock())
        added: list[StoredObject] = []
        for row in rows:
            date_added = max(now, last + 1)
            version_us = row.version_us if row.version_key else date_added
            cur = db.execute(
                "INSERT OR IGNORE INTO objects (collection_id, object_id, object_type,"
                " version_key, version_us, spec_version, date_added_us, body)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (
                    collection_id,
                    row.id,
                    row.type,
                    row.version_key,
                    version_us,
                    row.spec_version,
                    date_added,
                    row.body,
                ),
            )
            if cur.rowcount:
                last = date_added
                added.append(
                    _stored(
                        row.id,
                        row.type,
                        row.version_key,
                        row.spec_version,
                        date_added,
                        row.body,
                    )
                )
        db.execute("UPDATE collections SET last_added_us=? WHERE id=?", (last, collection_id))
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
                        db.execute(
                            "UPDATE objects SET withdrawn=1 WHERE collection_id=?"
                            " AND object_id=? AND version_key=?",
                            (cid, oid, version_key or ""),
                        )
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
            " WHERE collection_id=? AND object_id=? AND withdrawn=0"
            " ORDER BY version_us DESC, date_added_us DESC LIMIT 1",
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
        added = self._insert(db, collection_id, [_normalise(body)])
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

    def _query_sync(self, collection_id: str, q: ObjectQuery) -> Page:
        where = ["collection_id = ?", "withdrawn = 0"]
        params: list[Any] = [collection_id]
        if q.ids:
            where.append(f"object_id IN ({','.join('?' * len(q.ids))})")
            params += q.ids
        if q.types:
            where.append(f"object_type IN ({','.join('?' * len(q.types))})")
            params += q.types
        if q.spec_versions:
            where.append(f"spec_version IN ({','.join('?' * len(q.spec_versions))})")
            params += q.spec_versions
        chosen: list[str] = []
        version_params: list[Any] = []
        for v in q.versions:
            if v == "all":
                chosen = ["1"]
                version_params = []
                break
            if v == "last":
                chosen.append("rn_last = 1")
            elif v == "first":
                chosen.append("rn_first = 1")
            else:
                chosen.append("version_us = ?")
                version_params.append(parse_us(v))
        outer = [f"({' OR '.join(chosen or ['rn_last = 1'])})"]
        outer_params: list[Any] = list(version_params)
        if q.added_after_us is not None:
            outer.append("date_added_us > ?")
            outer_params.append(q.added_after_us)
        if q.after_cursor_us is not None:
            outer.append("date_added_us > ?")
            outer_params.append(q.after_cursor_us)
        sql = (
            "WITH v AS (SELECT object_id, object_type, version_key, spec_version,"
            " date_added_us, body,"
            " ROW_NUMBER() OVER (PARTITION BY object_id"
            "   ORDER BY version_us DESC, date_added_us DESC) AS rn_last,"
            " ROW_NUMBER() OVER (PARTITION BY object_id"
            "   ORDER BY version_us ASC, date_added_us ASC) AS rn_first,"
            " version_us"
            f" FROM objects WHERE {' AND '.join(where)})"
            " SELECT object_id, object_type, version_key, spec_version, date_added_us, body"
            f" FROM v WHERE {' AND '.join(outer)} ORDER BY date_added_us LIMIT ?"
        )
        with self._lock:
            rows = self._db().execute(sql, (*params, *outer_params, q.limit + 1)).fetchall()
        more = len(rows) > q.limit
        items = tuple(_stored(*row) for row in rows[: q.limit])
        return Page(items, more, items[-1].date_added_us if more and items else None)


@dataclass(frozen=True, slots=True)
class _Incoming:
    id: str
    type: str
    version_key: str
    version_us: int
    spec_version: str
    body: str


def _flatten(objects: Iterable[Any]) -> Iterable[Any]:
    for obj in objects:
        kind = obj.get("type") if isinstance(obj, Mapping) else None
        if kind == "bundle":
            yield from obj.get("objects") or ()
        else:
            yield obj


def _normalise(obj: Any) -> _Incoming:
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
    return _Incoming(oid, kind, version_key, version_us, spec_version, body)


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
