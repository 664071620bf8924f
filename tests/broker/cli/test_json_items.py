"""`--json` reports written item by item are the same bytes as written whole."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.cli._output import emit_json, emit_json_items

_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=6).filter(lambda k: k != "objects"), _VALUES, max_size=5),
    st.lists(_VALUES, max_size=4),
)
def test_written_item_by_item_is_written_whole(head: dict[str, Any], items: list[Any]) -> None:
    whole = _captured(lambda: emit_json({**head, "objects": items}))
    by_item = _captured(lambda: emit_json_items(head, "objects", iter(items)))
    assert by_item == whole
    assert json.loads(by_item) == {**head, "objects": items}


def _captured(write: Callable[[], None]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        write()
    return buffer.getvalue()
