"""The publisher's record of what it sent where, so it can retract a message later.

Only routing facts are kept (type, labels, topics, recipients), never content.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.envelope import Labels


@dataclass(frozen=True, slots=True)
class SentCopy:
    community: str
    topic: str
    recipients: tuple[str, ...]
    redacted_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SentMessage:
    message_id: str
    sender: str
    payload_type: str
    labels: Labels
    copies: tuple[SentCopy, ...]


class SentLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # An index for retraction, not a record of truth (the audit log is): WAL with
        # NORMAL sync survives a crash of the process, and costs no fsync per message.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sent (message_id TEXT PRIMARY KEY, body TEXT NOT NULL)"
        )

    def add(self, message: SentMessage) -> None:
        self.add_many([message])

    def add_many(self, messages: Iterable[SentMessage]) -> None:
        """Remember messages for retraction, in one transaction."""
        rows = [(m.message_id, json.dumps(_body(m))) for m in messages]
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO sent (message_id, body) VALUES (?, ?)", rows
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def get(self, message_id: str) -> SentMessage | None:
        row = self._db.execute(
            "SELECT body FROM sent WHERE message_id = ?", (message_id,)
        ).fetchone()
        if row is None:
            return None
        body = json.loads(row[0])
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
        )

    def close(self) -> None:
        self._db.close()


def _body(message: SentMessage) -> dict[str, Any]:
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
    }
