"""frozen_heap: what is alive on entry is out of the collector's scans, and handed back;
gc_paused: the collector held off in its block and left as it was found."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from broker.heap import frozen_heap, gc_paused, with_frozen_heap


def test_objects_alive_on_entry_are_frozen_within_and_handed_back_after() -> None:
    held = [{"id": i} for i in range(1000)]
    before = gc.get_freeze_count()
    with frozen_heap():
        assert gc.get_freeze_count() >= before + len(held)
    assert gc.get_freeze_count() == 0


def test_the_heap_is_handed_back_when_the_run_raises() -> None:
    try:
        with frozen_heap():
            raise RuntimeError("a run that fails")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0


def test_garbage_among_the_frozen_objects_is_collected_after() -> None:
    import weakref

    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the cyclic collector frees it

    node = Node()
    gone = weakref.ref(node)
    with frozen_heap():
        del node
        gc.collect()
        assert gone() is not None  # frozen: not scanned, not freed
    gc.collect()
    assert gone() is None


@pytest.fixture
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_in_the_block_and_on_after_it(collector_restored: None) -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_in_the_block_still_turns_it_back_on(collector_restored: None) -> None:
    gc.enable()
    with pytest.raises(KeyError), gc_paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_a_collector_turned_off_by_someone_else_stays_off(collector_restored: None) -> None:
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_nested_or_overlapping_blocks_leave_it_on_when_it_was(collector_restored: None) -> None:
    gc.enable()
    outer, inner = gc_paused(), gc_paused()
    outer.__enter__()
    inner.__enter__()  # another thread's block, begun while the first runs
    outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_bulk_coroutine_runs_frozen_and_hands_the_heap_back_whatever_it_does() -> None:
    held = [{"id": i} for i in range(1000)]

    @with_frozen_heap
    async def bulk(n: int) -> int:
        assert gc.get_freeze_count() >= len(held)
        if n < 0:
            raise ValueError("refused")
        return n * 2

    assert asyncio.run(bulk(21)) == 42
    assert gc.get_freeze_count() == 0
    with pytest.raises(ValueError, match="refused"):
        asyncio.run(bulk(-1))
    assert gc.get_freeze_count() == 0
