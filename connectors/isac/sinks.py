"""File sinks for the subscriber: `await sink.deliver(item)` returns once the data is on disk.

The subscriber commits its Kafka offset only after `deliver` returns, so a
crash between the two re-delivers (at least once); STIX and MISP files are
named by message id, so a re-delivery overwrites the same file.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Protocol

from connectors._atomic import append_durable, safe_name, write_atomic
from connectors._values import as_time
from connectors.isac._jsonl import to_jsonl_line
from connectors.isac._misp import to_misp_event
from connectors.isac._stix import to_stix_bundle
from connectors.isac.delivered import Delivered


class Sink(Protocol):
    """What the subscriber calls for every record it may deliver."""

    async def deliver(self, item: Delivered) -> Path: ...


def _file_name(item: Delivered, suffix: str) -> str:
    stamp = as_time(item.received).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{safe_name(item.message_id)}{suffix}"


class StixFileSink:
    """One STIX 2.1 bundle file per message: <dir>/<received>-<message id>.stix.json."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    async def deliver(self, item: Delivered) -> Path:
        data = json.dumps(to_stix_bundle([item]), indent=2, sort_keys=True).encode()
        path = self.directory / _file_name(item, ".stix.json")
        return await asyncio.to_thread(write_atomic, path, data)


class MispFileSink:
    """One MISP event file per message: <dir>/<received>-<message id>.misp.json."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    async def deliver(self, item: Delivered) -> Path:
        info = f"jcu-broker: {item.payload_type} from {item.sender} ({item.message_id})"
        data = json.dumps(to_misp_event([item], info), indent=2, sort_keys=True).encode()
        path = self.directory / _file_name(item, ".misp.json")
        return await asyncio.to_thread(write_atomic, path, data)


class JsonlFileSink:
    """Every payload type, one line each, appended to <dir>/<received UTC date>.jsonl."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    async def deliver(self, item: Delivered) -> Path:
        line = (to_jsonl_line(item) + "\n").encode()
        path = self.directory / f"{as_time(item.received):%Y-%m-%d}.jsonl"
        return await asyncio.to_thread(append_durable, path, line)
