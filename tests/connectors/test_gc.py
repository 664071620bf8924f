"""`gc_paused` holds the collector off in its block and leaves it as it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from connectors._gc import gc_paused


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_in_the_block_and_on_after_it() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_in_the_block_still_turns_it_back_on() -> None:
    gc.enable()
    with pytest.raises(KeyError), gc_paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_a_collector_turned_off_by_someone_else_stays_off() -> None:
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_nested_or_overlapping_blocks_leave_it_on_when_it_was() -> None:
    gc.enable()
    outer, inner = gc_paused(), gc_paused()
    outer.__enter__()
    inner.__enter__()  # another thread's block, begun while the first runs
    outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    assert gc.isenabled()
