"""JSON for the sinks' hot path: orjson, with the standard library for what it refuses.

A sink writes every delivered record as JSON (a line, a bundle file, an event
file), so encoding is much of a sink's CPU; orjson does it several times faster
than `json`. Output is UTF-8 with keys sorted, byte for byte what
`json.dumps(sort_keys=True, ensure_ascii=False)` writes with the same separators,
so readers see no change (a float may be spelt otherwise, `0.00001` for `1e-05`:
the same number). orjson refuses to write integers beyond 64 bits and
reads them as floats: those documents go through `json` instead, unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LINE = orjson.OPT_SORT_KEYS
_PRETTY = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
#: 19 digits in a row may be an integer orjson would read as a float (a hash in a string
#: matches too: that document is read by `json`, a little slower, the same).
_MAYBE_BIG = re.compile(rb"[0-9]{19}")


def line(obj: Any) -> bytes:
    """`obj` as compact JSON on one line (no newline), keys sorted."""
    try:
        return orjson.dumps(obj, option=_LINE)
    except orjson.JSONEncodeError:
        return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def pretty(obj: Any) -> bytes:
    """`obj` indented by two spaces, keys sorted: the sinks' files, for people and tools."""
    try:
        return orjson.dumps(obj, option=_PRETTY)
    except orjson.JSONEncodeError:
        return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False).encode()


def loads(data: bytes | str) -> Any:
    """Parse JSON: the values `json.loads` gives, integers of any size included."""
    raw = data.encode() if isinstance(data, str) else data
    if _MAYBE_BIG.search(raw):
        return json.loads(raw)
    return orjson.loads(raw)
