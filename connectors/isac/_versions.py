"""Every version a file sink received, so it shows the source's newest, never the last to arrive.

Messages reach a recipient in any order (one partition each), and an older
version of an object can arrive after a newer one. The index keeps every
version received (object id, the source's version, the message that brought
it, the sender) and answers which one to show: the newest by the source's
version that no retraction withdrew. An id belongs to the first sender that
delivered it: another sender's version of it is refused, so no one can
overwrite someone else's object. A retraction withdraws exactly the versions
its message brought; it is not a version itself (a STIX `revoked: true` from
the source is). Changes are committed by `commit()`, which the sink calls
from `flush` (before the subscriber commits its offsets).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from broker.errors import ConfigError
from broker.files import private_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    object_id TEXT NOT NULL,
    version_us INTEGER NOT NULL,
    version TEXT,
    message_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    grp TEXT,
    redacted TEXT NOT NULL DEFAULT '',
    retracted INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    PRIMARY KEY (object_id, version_us, message_id)
);
CREATE INDEX IF NOT EXISTS versions_by_message ON versions (message_id);
CREATE INDEX IF NOT EXISTS versions_by_group ON versions (grp);
CREATE TABLE IF NOT EXISTS owners (object_id TEXT PRIMARY KEY, sender TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS retracted (message_id TEXT PRIMARY KEY);
"""


@dataclass(frozen=True, slots=True)
class Version:
    """One version of one object, as received."""

    object_id: str
    version_us: int
    version: str | None
    message_id: str
    sender: str
    group: str | None
    redacted: tuple[str, ...]
    body: str


class VersionIndex:
    """The versions one sink directory received (a SQLite file in it)."""

    def __init__(self, path: Path) -> None:
        private_file(path)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._open = False

    def _begin(self) -> None:
        if not self._open:
            self._db.execute("BEGIN IMMEDIATE")
            self._open = True

    def commit(self) -> None:
        """Make everything added or retracted so far durable."""
        if self._open:
            self._db.execute("COMMIT")
            self._open = False

    def close(self) -> None:
        self.commit()
        self._db.close()

    def add(self, version: Version) -> bool:
        """Record a version; True when it is now the one to show for its object.

        Raises ConfigError when another sender owns the object id. A version of a
        message retracted before it arrived (a late re-delivery) is recorded as
        withdrawn already.
        """
        self._begin()
        owner = self._db.execute(
            "SELECT sender FROM owners WHERE object_id = ?", (version.object_id,)
        ).fetchone()
        if owner is not None and owner[0] != version.sender:
            raise ConfigError(
                f"{version.object_id} was delivered by {owner[0]}; "
                f"{version.sender} may not version it"
            )
        if owner is None:
            self._db.execute(
                "INSERT INTO owners (object_id, sender) VALUES (?, ?)",
                (version.object_id, version.sender),
            )
        withdrawn = self._db.execute(
            "SELECT 1 FROM retracted WHERE message_id = ?", (version.message_id,)
        ).fetchone()
        self._db.execute(
            "INSERT OR REPLACE INTO versions (object_id, version_us, version, message_id,"
            " sender, grp, redacted, retracted, body) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                version.object_id,
                version.version_us,
                version.version,
                version.message_id,
                version.sender,
                version.group,
                "\n".join(version.redacted),
                1 if withdrawn else 0,
                version.body,
            ),
        )
        shown = self.newest(version.object_id)
        return (
            shown is not None
            and shown.message_id == version.message_id
            and shown.version_us == version.version_us
        )

    def newest(self, object_id: str) -> Version | None:
        """The version to show: the source's newest not withdrawn (ties: the last to arrive)."""
        row = self._db.execute(
            "SELECT object_id, version_us, version, message_id, sender, grp, redacted, body"
            " FROM versions WHERE object_id = ? AND retracted = 0"
            " ORDER BY version_us DESC, rowid DESC LIMIT 1",
            (object_id,),
        ).fetchone()
        return _version(row) if row is not None else None

    def group(self, group: str) -> list[Version]:
        """The version to show of every object of a group (a STIX bundle made one MISP event),
        by object id: `newest` of each, in one query (a group may hold 10,000 objects)."""
        rows = self._db.execute(
            "SELECT object_id, version_us, version, message_id, sender, grp, redacted, body"
            " FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY object_id"
            "       ORDER BY version_us DESC, rowid DESC) AS rank"
            "       FROM versions WHERE retracted = 0 AND object_id IN"
            "       (SELECT object_id FROM versions WHERE grp = ?))"
            " WHERE rank = 1 ORDER BY object_id",
            (group,),
        )
        return [_version(row) for row in rows]

    def retract(self, message_id: str) -> list[tuple[str, str | None]]:
        """Withdraw the versions a message brought: (object id, group) of each, for re-rendering."""
        self._begin()
        self._db.execute("INSERT OR IGNORE INTO retracted (message_id) VALUES (?)", (message_id,))
        rows = self._db.execute(
            "SELECT DISTINCT object_id, grp FROM versions WHERE message_id = ?", (message_id,)
        ).fetchall()
        self._db.execute("UPDATE versions SET retracted = 1 WHERE message_id = ?", (message_id,))
        return [(r[0], r[1]) for r in rows]

    def holds(self, message_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM versions WHERE message_id = ? LIMIT 1", (message_id,)
        ).fetchone()
        return row is not None


def _version(row: tuple[object, ...]) -> Version:
    object_id, version_us, version, message_id, sender, group, redacted, body = row
    return Version(
        str(object_id),
        int(str(version_us)),
        None if version is None else str(version),
        str(message_id),
        str(sender),
        None if group is None else str(group),
        tuple(str(redacted).split("\n")) if redacted else (),
        str(body),
    )
