"""Delivered records -> JSON lines: one self-describing JSON object per record, all fields."""

from __future__ import annotations

from connectors import _json
from connectors import tlp as tlp_levels
from connectors._values import json_ready
from connectors.isac.delivered import Delivered


def to_jsonl_line(item: Delivered) -> str:
    """One JSON object on one line (no trailing newline), keys sorted."""
    return jsonl_bytes(item).decode()


def jsonl_bytes(item: Delivered) -> bytes:
    """`to_jsonl_line` as UTF-8 bytes, as the sinks write it."""
    line = {
        "message_id": item.message_id,
        "sender": item.sender,
        "received": json_ready(item.received),
        "payload_type": item.payload_type,
        "tlp": tlp_levels.normalise(item.tlp),
        "categories": sorted(item.categories),
        "retracted": item.retracted,
        "redacted": item.redacted,
        "record": json_ready(item.record),
    }
    return _json.line(line)
