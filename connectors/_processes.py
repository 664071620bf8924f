"""A pure function over many items on every core, for the parse steps that are CPU-bound
in Python: a million-object feed's checks by the `stix2` library took minutes on one core.

Workers are spawned (never forked: the caller has threads and open connections), so
`fn` must be a module-level function and its items and results picklable, and the
program's main module import-safe (the `if __name__ == "__main__":` idiom): a spawned
process imports it. A pool that cannot start or breaks is not an error: the work is
then done in this process, and that is logged once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from broker import faults
from broker.errors import Interrupted
from broker.logs import get_logger

T = TypeVar("T")
R = TypeVar("R")

_log = get_logger(__name__)
_STOPPED = "stopped before the work was done"


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
    stop: threading.Event | None = None,
) -> list[R]:
    """`fn` over `items` in chunks of `chunk`, results in the items' order: in `workers`
    spawned processes when there is more than one chunk for them, else here. `stop` set
    (by another thread) ends the work within a chunk: `Interrupted`."""
    if len(items) <= chunk:
        return fn(items)
    parts = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    if workers <= 1:
        return _here(fn, parts, stop)
    # imported here: a small file's parse (and `jcu`'s start) never needs them
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(workers, len(parts)), mp_context=context, initializer=_worker_start
        ) as pool:
            results: list[R] = []
            for n, part in enumerate(pool.map(fn, parts), 1):
                if stop is not None and stop.is_set():
                    pool.shutdown(cancel_futures=True)
                    raise Interrupted(_STOPPED)
                results += part
                faults.point("parse.after-chunk", n, heard=stop)
            return results
    except (BrokenProcessPool, OSError) as exc:
        _log.warning(
            "worker processes failed; continuing in this process",
            work=getattr(fn, "__qualname__", repr(fn)),
            items=len(items),
            error=f"{type(exc).__name__}: {exc}",
        )
        return _here(fn, parts, stop)


def _here(
    fn: Callable[[Sequence[T]], list[R]], parts: list[Sequence[T]], stop: threading.Event | None
) -> list[R]:
    results: list[R] = []
    for n, part in enumerate(parts, 1):
        if stop is not None and stop.is_set():
            raise Interrupted(_STOPPED)
        results += fn(part)
        faults.point("parse.after-chunk", n, heard=stop)
    return results


def _worker_start() -> None:
    # Ctrl-C reaches the whole process group. The parent decides what stops: a worker's
    # KeyboardInterrupt would come back to it as the chunk's error.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
