"""The SIENA-style connector on the broker: case message files in, mailbox files out.

`publish_case_file` publishes one case message file as a `CaseMessage`: the
file's recipients become the named recipients and its handling codes the
labels, so the policy (not this code) enforces H2/H3. `MailboxSink` is the
subscriber's sink that writes delivered case messages back in the same file
format; everything else the participant receives goes to JSON lines in
`<mailbox>/other/`, never dropped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from broker.envelope import Labels
from broker.errors import MalformedRecord, WrongSender
from broker.pep import Publisher
from broker.pep.sink import Delivery, Retracted
from connectors._atomic import safe_name, sync_files, write_atomic
from connectors._input import DEFAULT_MAX_BYTES
from connectors._values import json_ready
from connectors.isac.subscriber import FormatSink
from connectors.siena._format import case_file_name, case_message_bytes, read_case_message

#: The payload type a case message travels as (stream: see broker.envelope.topics).
CASE_MESSAGE = "CaseMessage"


async def publish_case_file(
    pub: Publisher,
    path: Path,
    *,
    categories: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """Publish one case message file as `pub`'s participant; the publication as JSON.

    The message id is the case message's id, so `jcu receipts <id>` finds it.
    Refuses (WrongSender) a file whose sender is not the publishing participant.
    """
    case = await asyncio.to_thread(read_case_message, path, max_bytes=max_bytes)
    sender = case.record["sender"]
    if sender != pub.participant:
        raise WrongSender(
            f"{path}: the case message is from {sender!r} but would be sent as "
            f"{pub.participant!r}; publish it as its sender (--as {sender})"
        )
    labels = Labels.of(
        case.tlp,
        handling_codes=case.handling_codes,
        categories=tuple(sorted(set(categories))),
        personal_data=case.personal_data,
    )
    result = await pub.publish(
        CASE_MESSAGE,
        case.record,
        labels=labels,
        recipients=case.recipients,
        message_id=str(case.record["id"]),
    )
    return {
        "file": str(path),
        "case_reference": case.record["case_reference"],
        **result.to_json(),
        "recipients": list(result.recipients),
    }


class MailboxSink:
    """Delivered case messages as files `<case reference>-<id>.json` in the mailbox.

    Idempotent: a re-delivery rewrites the same file. A retraction leaves the
    message and adds `<file>.retracted.json` (who, when, why) next to it.
    `deliver` checks and renders a case message; `flush` writes the batch's files
    and makes them durable together.
    """

    def __init__(self, mailbox: Path) -> None:
        self.mailbox = Path(mailbox)
        self._other = FormatSink("jsonl", self.mailbox / "other")
        self.written: dict[str, Path] = {}
        self._unsynced: set[Path] = set()
        self._pending: dict[Path, bytes] = {}  # the batch's case files, written by flush

    async def deliver(self, delivery: Delivery) -> None:
        if delivery.payload_type != CASE_MESSAGE:
            await self._other.deliver(delivery)
            return
        # The file speaks in the payload's name: it must be the verified sender's own case
        # message, under its own id, or one member could overwrite another's case file.
        claimed, case_id = delivery.record.get("sender"), str(delivery.record.get("id"))
        if claimed != delivery.sender or case_id != delivery.message_id:
            raise MalformedRecord(
                f"case message {case_id} claims sender {claimed!r} but was sent by "
                f"{delivery.sender} as message {delivery.message_id}"
            )
        path = self.mailbox / case_file_name(delivery.record)
        self._pending[path] = case_message_bytes(delivery.record, tlp=delivery.labels.tlp)
        self.written[delivery.message_id] = path

    def _case_file(self, message_id: str) -> Path | None:
        found = sorted(self.mailbox.glob(f"*-{safe_name(message_id)}.json"))
        return found[0] if found else None

    async def retract(self, retraction: Retracted) -> None:
        await self.flush()  # a retraction acts on what was delivered before it
        case = self._case_file(retraction.message_id)
        if case is None:
            if self._other.holds(retraction.message_id):
                await self._other.retract(retraction)
            return
        note = {
            "message_id": retraction.message_id,
            "retracted": True,
            "sender": retraction.sender,
            "reason": retraction.reason,
            "time": json_ready(retraction.retracted),
        }
        data = (json.dumps(note, indent=2, sort_keys=True) + "\n").encode()
        note_path = case.with_name(case.name + ".retracted.json")
        self._unsynced.add(await asyncio.to_thread(write_atomic, note_path, data, durable=False))

    async def flush(self) -> None:
        """The batch's case files (and notes) written and on disk, then the other
        deliveries' lines. What fails is kept for the retried flush (rewriting a case file
        is harmless: it is named by its message)."""
        if self._pending or self._unsynced:
            await asyncio.to_thread(self._write_batch)
        await self._other.flush()

    def _write_batch(self) -> None:
        for path, data in self._pending.items():
            self._unsynced.add(write_atomic(path, data, durable=False))
        sync_files(self._unsynced)
        self._pending.clear()
        self._unsynced.clear()

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            await self._other.close()


__all__ = ["CASE_MESSAGE", "MailboxSink", "publish_case_file"]
