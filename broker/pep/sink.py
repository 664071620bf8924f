"""Where a subscriber hands what it received: the sink contract and the JSON-lines sink.

The subscriber calls `deliver` for each record of a batch, then `flush`, and
commits the batch's Kafka offsets only after `flush` returns: by then every
delivered record must be durable. Sinks are idempotent per message id: after a
crash between delivery and commit the record comes again, and delivering it
twice must leave one copy. Connectors (STIX, MISP, TAXII,
SIENA, webhooks) implement the same protocol.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from broker import faults
from broker.envelope import Labels
from broker.files import open_private, private_file
from broker.pep._tail import DEFAULT_REMEMBER, RecentKeys, drop_torn_tail, last_lines
from broker.record_json import json_default, to_json

_LINE_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=json_default)
#: Seconds a sink may stay unavailable before the subscriber stops without committing.
DEFAULT_SINK_GIVE_UP = 600.0


@dataclass(frozen=True, slots=True)
class SinkRetry:
    """How a subscriber waits for a sink that cannot take a delivery: delays base, 2*base,
    4*base... capped at `cap`; says so at once and then every `tell_every` seconds; stops
    without committing after `give_up_after` seconds of one outage."""

    give_up_after: float = DEFAULT_SINK_GIVE_UP
    base: float = 0.5
    cap: float = 30.0
    tell_every: float = 60.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One verified, decrypted, policy-checked record for one participant."""

    participant: str
    message_id: str
    sender: str
    payload_type: str  # short Avro name, e.g. "Indicator"
    record: dict[str, Any]
    labels: Labels
    topic: str
    partition: int
    offset: int
    created: datetime
    received: datetime
    redacted_fields: tuple[str, ...] = ()
    obligations: tuple[str, ...] = ()

    @property
    def redacted(self) -> bool:
        return bool(self.redacted_fields)

    def to_json(self) -> dict[str, Any]:
        return self._json(to_json(self.record))

    def json_line(self) -> str:
        """`to_json()` as one JSON line (keys sorted, no newline), without the record copy."""
        return _LINE_ENCODER.encode(self._json(self.record))

    def _json(self, record: Any) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "participant": self.participant,
            "sender": self.sender,
            "type": self.payload_type,
            "labels": self.labels.to_json(),
            "created": self.created.isoformat(),
            "received": self.received.isoformat(),
            "redacted_fields": list(self.redacted_fields),
            "obligations": list(self.obligations),
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
            "record": record,
        }


@dataclass(frozen=True, slots=True)
class Retracted:
    """The sender withdrew a message this participant received."""

    participant: str
    message_id: str
    sender: str
    reason: str
    retracted: datetime
    labels: Labels = field(default_factory=lambda: Labels.of("CLEAR"))

    def to_json(self) -> dict[str, Any]:
        return {
            "retracted": True,
            "message_id": self.message_id,
            "participant": self.participant,
            "sender": self.sender,
            "reason": self.reason,
            "time": self.retracted.isoformat(),
        }


class Sink(Protocol):
    async def deliver(self, delivery: Delivery) -> None:
        """Store `delivery`; a second call with the same message id changes nothing."""

    async def retract(self, retraction: Retracted) -> None:
        """Mark an earlier delivery as retracted (idempotent too)."""

    async def flush(self) -> None:
        """Return once everything delivered so far is durable."""

    async def close(self) -> None: ...


class JsonlSink:
    """JSON lines, one object per delivery or retraction, to a file (fsync'd) or stdout.

    Idempotence: a redelivered record is not written twice. Only the last batches can
    come again (the subscriber drops what its ledger settled), so the sink remembers the
    keys of its last `remember` writes, reading at open only the end of the file: memory
    bounded by configuration, whatever the file's length (broker.pep._tail).
    """

    def __init__(self, out: Path | TextIO, *, remember: int = DEFAULT_REMEMBER) -> None:
        self._path = out if isinstance(out, Path) else None
        self.path = self._path  # how logs and errors name this sink
        self._stream: TextIO | None = None if isinstance(out, Path) else out
        self._seen = RecentKeys(remember)
        self._dirty = False
        self.count = 0

    @classmethod
    def stdout(cls) -> JsonlSink:
        return cls(sys.stdout)

    def _open(self) -> TextIO:
        if self._stream is None:
            assert self._path is not None  # noqa: S101 - narrows for mypy: a stream or a path
            private_file(self._path)  # decrypted records: 0600 in a 0700 directory
            if self._path.stat().st_size:
                drop_torn_tail(self._path)
                keys = [_key_of(line) for line in last_lines(self._path, self._seen.limit)]
                for key in reversed(keys):
                    self._seen.add(key)
            self._stream = open_private(self._path)
        return self._stream

    def _write(self, key: tuple[str, bool], line: Callable[[], str]) -> None:
        stream = self._open()
        if key in self._seen:
            return
        faults.fail("sink.write", self.count + 1)
        stream.write(line() + "\n")
        self._seen.add(key)
        self._dirty = True
        self.count += 1

    async def flush(self) -> None:
        if self._stream is None or not self._dirty:
            return
        self._stream.flush()
        if self._path is not None:
            await asyncio.to_thread(os.fsync, self._stream.fileno())
        self._dirty = False

    async def deliver(self, delivery: Delivery) -> None:
        self._write((delivery.message_id, False), delivery.json_line)

    async def retract(self, retraction: Retracted) -> None:
        self._write(
            (retraction.message_id, True),
            lambda: json.dumps(retraction.to_json(), sort_keys=True, ensure_ascii=False),
        )

    async def close(self) -> None:
        await self.flush()
        if self._stream is not None and self._path is not None:
            self._stream.close()
            self._stream = None


def _key_of(line: bytes) -> tuple[str, bool]:
    """What a written line is, for the duplicate check: (message id, is a retraction)."""
    obj = json.loads(line)
    return str(obj.get("message_id", "")), bool(obj.get("retracted"))
