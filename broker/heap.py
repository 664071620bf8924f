"""The cyclic garbage collector during bulk work: keep what a run holds out of its scans
(`frozen_heap`), or hold it off while a large document is built (`gc_paused`).

A publish of a large file holds the parsed file (tens of thousands of dicts)
and the node's state (registry, schemas, policy) for the whole run while it
makes many short-lived objects per message. CPython's full collections scan
every object alive each time one runs, so on a 10,000-object STIX file they
took about a fifth of the publisher's CPU (`python -m bench.stix`).
`gc.freeze()` moves what is alive at the start to a generation no collection
scans; `gc.unfreeze()` at the end hands it back, so nothing is kept past the run
and garbage among it is collected by the next full collection as usual.

Rewriting a MISP event of a 10,000-object bundle makes a few hundred thousand
objects (stix2's, PyMISP's) that all live until the event is written; the
collector, counting allocations, walks that growing heap again and again
meanwhile: about a third of the rewrite's CPU (`python -m bench.sinks`), for
almost nothing to free. `gc_paused` holds it off for the block; reference
counting still frees what it can (peak memory 279 -> 285 MiB on that bench).
The collector is the process's: the block leaves it as it found it, and a block
in another thread at the same time leaves it enabled if it was before either began.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Within: the objects alive on entry are not scanned by the cyclic collector.

    Objects made within are collected as usual. Nested or concurrent uses are safe:
    the first exit hands everything back (later objects are merely scanned again).
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def with_frozen_heap(run: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """A bulk coroutine run within `frozen_heap` (what is alive when it is called)."""

    @functools.wraps(run)
    async def frozen(*args: P.args, **kwargs: P.kwargs) -> R:
        with frozen_heap():
            return await run(*args, **kwargs)

    return frozen


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection in this block (the collector as found after it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
