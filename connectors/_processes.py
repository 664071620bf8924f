"""A pure function over many items on every core, for the parse steps that are CPU-bound
in Python: a million-object feed's checks by the `stix2` library took minutes on one core.

Workers are spawned (never forked: the caller has threads and open connections), so
`fn` must be a module-level function and its items and results picklable, and the
program's main module import-safe (the `if __name__ == "__main__":` idiom): a spawned
process imports it. A pool
that cannot start or breaks is not an error: the work is then done in this process,
and that is logged once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from broker.logs import get_logger

T = TypeVar("T")
R = TypeVar("R")

_log = get_logger(__name__)


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def map_chunks(
    fn: Callable[[Sequence[T]], list[R]],
    items: Sequence[T],
    *,
    workers: int,
    chunk: int = 1000,
) -> list[R]:
    """`fn` over `items` in chunks of `chunk`, results in the items' order: in `workers`
    spawned processes when there is more than one chunk for them, else here."""
    if workers <= 1 or len(items) <= chunk:
        return fn(items)
    # imported here: a small file's parse (and `jcu`'s start) never needs them
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    parts = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(parts)), mp_context=context) as pool:
            return [result for part in pool.map(fn, parts) for result in part]
    except (BrokenProcessPool, OSError) as exc:
        _log.warning(
            "worker processes failed; continuing in this process",
            work=getattr(fn, "__qualname__", repr(fn)),
            items=len(items),
            error=f"{type(exc).__name__}: {exc}",
        )
        return fn(items)
