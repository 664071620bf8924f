"""The sinks' JSON (orjson) is byte for byte what the standard library writes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import _json

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_VALUES)
def test_lines_and_files_match_the_standard_library(value: Any) -> None:
    """Byte for byte without floats (orjson may spell a float otherwise); the same values
    read back always, integers beyond 64 bits included."""
    line = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    pretty = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    if not _has_float(value):
        assert _json.line(value) == line.encode()
        assert _json.pretty(value) == pretty.encode()
    assert _json.loads(_json.line(value)) == json.loads(line) == value
    assert _json.loads(_json.pretty(value)) == value


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False
