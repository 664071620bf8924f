"""Dead letters as an operator reads them: what was refused, where, why, and its replay.

A dead letter is the copy of a record a subscriber refused, on `jcu.dlq`, with
the reason and where it came from in its headers (broker.pep.subscriber). Its
id is its own position on the dead-letter topic, `<partition>:<offset>`. Only
the platform's operators and auditors may read that topic (the Kafka walls:
docs/deployment.md); what they see is the headers and the sealed envelope, never
decrypted content. Replaying one (`held_record`) hands it back to the receiving
participant's subscriber as it was at its position, to be checked again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broker.errors import ConfigError
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import scan
from broker.kafka.topics import DLQ
from broker.pep.subscriber import HeldRecord

_ID = re.compile(r"^(\d+):(\d+)$")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused record: its id on the dead-letter topic and what its headers say."""

    id: str
    reason: str
    error: str
    participant: str
    #: where the refused record was: topic, partition, offset (None if not said)
    source: tuple[str, int, int] | None
    #: the sender: verified (an `unauthorised` refusal) or as its clear header claims
    sender: str | None
    sender_verified: bool
    #: when it was dead-lettered (the dead-letter topic's time)
    time: datetime | None
    message_id: str
    size: int
    sha256: str
    headers: tuple[tuple[str, str], ...]
    value: bytes | None
    key: bytes | None
    appended_ms: int | None
    group: str | None

    @property
    def replayable(self) -> bool:
        """Whether the whole refused record was kept (a large one is kept as digest only)."""
        return self.value is not None and self.source is not None

    def to_json(self) -> dict[str, Any]:
        """What `jcu dlq list/show --json` prints: headers and sizes, never the content."""
        return {
            "id": self.id,
            "reason": self.reason,
            "error": self.error,
            "participant": self.participant,
            "source": (
                {"topic": self.source[0], "partition": self.source[1], "offset": self.source[2]}
                if self.source
                else None
            ),
            "sender": self.sender,
            "sender_verified": self.sender_verified,
            "time": self.time.isoformat() if self.time else None,
            "message_id": self.message_id,
            "size": self.size,
            "sha256": self.sha256,
            "kept": self.value is not None,
            "group": self.group,
            "headers": dict(self.headers),
        }


def parse_id(text: str) -> tuple[int, int]:
    """`<partition>:<offset>` as printed by `jcu dlq list`; ConfigError otherwise."""
    m = _ID.match(text.strip())
    if m is None:
        raise ConfigError(
            f"{text!r} is not a dead-letter id: give <partition>:<offset> as `jcu dlq list` "
            "prints it"
        )
    return int(m.group(1)), int(m.group(2))


def _text(headers: dict[str, bytes], name: str) -> str | None:
    value = headers.get(name)
    return bytes(value).decode("utf-8", errors="replace") if value is not None else None


def dead_letter_of(record: Any) -> DeadLetter:
    """A dead-letter topic record as a DeadLetter (headers it lacks read as unknown)."""
    headers = {k: bytes(v) for k, v in (record.headers or ())}
    source: tuple[str, int, int] | None = None
    where = _text(headers, "jcu.source")
    if where:
        topic, _, rest = where.rpartition(":")
        topic, _, partition = topic.rpartition(":")
        try:
            source = (topic, int(partition), int(rest))
        except ValueError:
            source = None
    verified = _text(headers, "jcu.sender")
    appended = _text(headers, "jcu.appended")
    return DeadLetter(
        id=f"{record.partition}:{record.offset}",
        reason=_text(headers, "jcu.reason") or "unknown",
        error=_text(headers, "jcu.error") or "",
        participant=_text(headers, "jcu.participant") or "?",
        source=source,
        sender=verified or _text(headers, "jcu.claimed-sender"),
        sender_verified=verified is not None,
        time=(
            datetime.fromtimestamp(record.timestamp / 1000, UTC)
            if record.timestamp is not None
            else None
        ),
        message_id=(record.key or b"").decode("utf-8", errors="replace"),
        size=int(_text(headers, "jcu.size") or len(record.value or b"")),
        sha256=_text(headers, "jcu.sha256") or "",
        headers=tuple(
            (k, v.decode("utf-8", errors="replace"))
            for k, v in headers.items()
            if k not in ("jcu.key",)
        ),
        value=record.value,
        key=headers.get("jcu.key"),
        appended_ms=int(appended) if appended and appended.isdigit() else None,
        group=_text(headers, "jcu.group"),
    )


async def read_dead_letters(
    kafka: KafkaConnection,
    *,
    participant: str | None = None,
    reason: str | None = None,
    ids: Iterable[str] = (),
) -> list[DeadLetter]:
    """The dead letters on `jcu.dlq` (as far as it is now), oldest first per partition;
    only `participant`'s, only those refused for `reason`, only those `ids`, when given.
    An organisation's principal is refused by the walls (KafkaForbidden)."""
    wanted = {parse_id(i) for i in ids}
    letters: list[DeadLetter] = []
    found: set[tuple[int, int]] = set()
    async for record in scan(kafka, [DLQ]):
        if wanted and (record.partition, record.offset) not in wanted:
            continue
        found.add((record.partition, record.offset))
        letter = dead_letter_of(record)
        if participant is not None and letter.participant != participant:
            continue
        if reason is not None and letter.reason != reason:
            continue
        letters.append(letter)
    missing = wanted - found
    if missing:
        names = ", ".join(f"{p}:{o}" for p, o in sorted(missing))
        raise ConfigError(f"no dead letter {names} on {DLQ}: `jcu dlq list` shows the ids")
    return letters


def held_record(letter: DeadLetter) -> HeldRecord:
    """The refused record as it was at its position, for the subscriber to check again:
    its original key and append time if the dead letter kept them, else the dead letter's
    key (the message id) and time (later than the original append: never more lenient)."""
    if letter.source is None or letter.value is None:
        raise ConfigError(
            f"dead letter {letter.id} kept only the digest of a {letter.size}-byte record "
            "(or no position): there is nothing to replay"
        )
    topic, partition, offset = letter.source
    appended = letter.appended_ms
    if appended is None and letter.time is not None:
        appended = int(letter.time.timestamp() * 1000)
    return HeldRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        key=letter.key if letter.key is not None else letter.message_id.encode(),
        value=letter.value,
        timestamp=appended,
        refused_as=letter.reason,
    )
