"""frozen_heap: what is alive on entry is out of the collector's scans, and handed back."""

from __future__ import annotations

import gc

from broker.heap import frozen_heap


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
