"""Keep what a bulk run holds for its whole length out of the garbage collector's scans.

A publish of a large file holds the parsed file (tens of thousands of dicts)
and the node's state (registry, schemas, policy) for the whole run while it
makes many short-lived objects per message. CPython's full collections scan
every object alive each time one runs, so on a 10,000-object STIX file they
took about a fifth of the publisher's CPU (`python -m bench.stix`).
`gc.freeze()` moves what is alive at the start to a generation no collection
scans; `gc.unfreeze()` at the end hands it back, so nothing is kept past the run
and garbage among it is collected by the next full collection as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


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
