"""File sinks for the subscriber: `await sink.deliver(item)` returns once the data is on disk.

The subscriber commits its Kafka offset only after the data is durable, so a
crash between the two re-delivers (at least once). Re-delivery must not make a
second copy: STIX and MISP files are named by message id only, so a re-delivery
rewrites the same file, and the JSON lines sink remembers which message ids its
files already hold. A retraction rewrites the message's file as its withdrawn
version (STIX `revoked: true` with a later `modified`; MISP `to_ids` false and
the `jcu:retracted` tag), or appends a retraction line to the JSON lines.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pymisp import MISPEvent

from connectors._atomic import append_durable, safe_name, write_atomic
from connectors._values import as_time, json_ready
from connectors.isac._jsonl import to_jsonl_line
from connectors.isac._misp import RETRACTED_TAG, to_misp_event
from connectors.isac._stix import to_stix_bundle
from connectors.isac.delivered import Delivered

_RETRACTED_NOTE = "; retracted by the sender"


class Sink(Protocol):
    """What the subscriber calls for every record it may deliver."""

    async def deliver(self, item: Delivered) -> Path: ...


def _file_name(message_id: str, suffix: str) -> str:
    return f"{safe_name(message_id)}{suffix}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _revoked_version(obj: dict[str, Any], when: datetime) -> dict[str, Any]:
    """The next STIX version of `obj`: `revoked: true`, `modified` strictly later."""
    out = dict(obj)
    previous = as_time(datetime.fromisoformat(str(obj["modified"]).replace("Z", "+00:00")))
    modified = max(as_time(when), previous + timedelta(milliseconds=1))
    out["modified"] = json_ready(modified)
    out["revoked"] = True
    refs = []
    for ref in obj.get("external_references", ()):
        ref = dict(ref)
        note = str(ref.get("description", ""))
        if ref.get("source_name") == "jcu-broker" and _RETRACTED_NOTE not in note:
            ref["description"] = note + _RETRACTED_NOTE
        refs.append(ref)
    if refs:
        out["external_references"] = refs
    return out


class StixFileSink:
    """One STIX 2.1 bundle file per message: <dir>/<message id>.stix.json."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path_for(self, message_id: str) -> Path:
        return self.directory / _file_name(message_id, ".stix.json")

    async def deliver(self, item: Delivered) -> Path:
        data = json.dumps(to_stix_bundle([item]), indent=2, sort_keys=True).encode()
        return await asyncio.to_thread(self._write, self.path_for(item.message_id), data, item)

    @staticmethod
    def _write(path: Path, data: bytes, item: Delivered) -> Path:
        old = _read_json(path)
        if not item.retracted and old and any(o.get("revoked") for o in old.get("objects", ())):
            return path  # a late re-delivery must not undo a retraction
        return write_atomic(path, data)

    async def retract(self, message_id: str, when: datetime) -> Path | None:
        """Rewrite the message's bundle as its revoked version; None if there is none."""
        return await asyncio.to_thread(self._retract, self.path_for(message_id), when)

    @staticmethod
    def _retract(path: Path, when: datetime) -> Path | None:
        bundle = _read_json(path)
        if bundle is None:
            return None
        objects = [
            o
            if o.get("type") == "marking-definition" or o.get("revoked")
            else _revoked_version(o, when)
            for o in bundle.get("objects", ())
        ]
        data = json.dumps({**bundle, "objects": objects}, indent=2, sort_keys=True).encode()
        return write_atomic(path, data)


class MispFileSink:
    """One MISP event file per message: <dir>/<message id>.misp.json."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path_for(self, message_id: str) -> Path:
        return self.directory / _file_name(message_id, ".misp.json")

    async def deliver(self, item: Delivered) -> Path:
        info = f"jcu-broker: {item.payload_type} from {item.sender} ({item.message_id})"
        data = json.dumps(to_misp_event([item], info), indent=2, sort_keys=True).encode()
        return await asyncio.to_thread(self._write, self.path_for(item.message_id), data, item)

    @staticmethod
    def _write(path: Path, data: bytes, item: Delivered) -> Path:
        old = _read_json(path)
        tags = [t.get("name") for t in (old or {}).get("Event", {}).get("Tag", ())]
        if not item.retracted and RETRACTED_TAG in tags:
            return path  # a late re-delivery must not undo a retraction
        return write_atomic(path, data)

    async def retract(self, message_id: str, when: datetime) -> Path | None:
        """Rewrite the message's event: `to_ids` false, tagged jcu:retracted; None if none."""
        return await asyncio.to_thread(self._retract, self.path_for(message_id))

    @staticmethod
    def _retract(path: Path) -> Path | None:
        doc = _read_json(path)
        if doc is None:
            return None
        event = MISPEvent()
        event.load(doc)
        if RETRACTED_TAG not in [t.name for t in event.tags]:
            event.add_tag(RETRACTED_TAG)
        for attribute in event.attributes:
            attribute.to_ids = False
            if RETRACTED_TAG not in [t.name for t in attribute.tags]:
                attribute.add_tag(RETRACTED_TAG)
        for report in event.event_reports:
            if "RETRACTED by the sender" not in report.content:
                report.content = f"{report.content}\n- RETRACTED by the sender"
        data = json.dumps({"Event": json.loads(event.to_json())}, indent=2, sort_keys=True)
        return write_atomic(path, data.encode())


class JsonlFileSink:
    """Every payload type, one line each, appended to <dir>/<received UTC date>.jsonl.

    Idempotent per message id: the message ids (and retractions) already in the
    directory's files are read on first use, and a line is written once.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._seen: set[tuple[str, bool]] | None = None

    def _keys(self) -> set[tuple[str, bool]]:
        if self._seen is None:
            seen: set[tuple[str, bool]] = set()
            for path in sorted(self.directory.glob("*.jsonl")):
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line torn by a crash: its record comes again
                    if isinstance(obj, dict) and "message_id" in obj:
                        seen.add((str(obj["message_id"]), bool(obj.get("retracted"))))
            self._seen = seen
        return self._seen

    def holds(self, message_id: str) -> bool:
        """Whether a delivery of `message_id` is already written here."""
        return (message_id, False) in self._keys()

    async def deliver(self, item: Delivered) -> Path:
        path = self.directory / f"{as_time(item.received):%Y-%m-%d}.jsonl"
        line = (to_jsonl_line(item) + "\n").encode()
        return await asyncio.to_thread(self._append, (item.message_id, item.retracted), path, line)

    async def retract(
        self, message_id: str, when: datetime, *, sender: str = "", reason: str = ""
    ) -> Path:
        """Append one retraction line: `{"message_id", "retracted": true, "sender", ...}`."""
        path = self.directory / f"{as_time(when):%Y-%m-%d}.jsonl"
        doc = {
            "message_id": message_id,
            "retracted": True,
            "sender": sender,
            "reason": reason,
            "received": json_ready(when),
        }
        line = (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()
        return await asyncio.to_thread(self._append, (message_id, True), path, line)

    def _append(self, key: tuple[str, bool], path: Path, line: bytes) -> Path:
        keys = self._keys()
        if key in keys:
            return path
        append_durable(path, line)
        keys.add(key)
        return path
