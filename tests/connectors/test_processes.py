"""Work on every core: results in order, and a pool that breaks costs no result."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from broker.errors import Interrupted
from connectors._processes import map_chunks


def squares(items: Sequence[int]) -> list[tuple[int, int]]:
    return [(n * n, os.getpid()) for n in items]


def dies_in_a_worker(items: Sequence[int]) -> list[int]:
    if multiprocessing.parent_process() is not None:
        os._exit(3)  # a worker killed mid-chunk (the OOM killer, a crash)
    return [n + 1 for n in items]


def ctrl_c_in_a_worker(items: Sequence[int]) -> list[int]:
    if multiprocessing.parent_process() is not None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C reaches the whole process group
    return [n + 1 for n in items]


def test_chunks_run_in_other_processes_and_come_back_in_order() -> None:
    items = list(range(23))
    results = map_chunks(squares, items, workers=2, chunk=4)
    assert [value for value, _ in results] == [n * n for n in items]
    assert os.getpid() not in {pid for _, pid in results}


def test_one_chunk_or_one_worker_stays_in_this_process() -> None:
    for workers, chunk in ((1, 4), (2, 100)):
        results = map_chunks(squares, list(range(10)), workers=workers, chunk=chunk)
        assert {pid for _, pid in results} == {os.getpid()}


def test_a_broken_pool_is_said_and_the_work_done_here() -> None:
    with capture_logs() as logs:
        results = map_chunks(dies_in_a_worker, list(range(9)), workers=2, chunk=2)
    assert results == [n + 1 for n in range(9)]
    failed = [e for e in logs if e["event"].startswith("worker processes failed")]
    assert len(failed) == 1
    assert failed[0]["items"] == 9
    assert "BrokenProcessPool" in failed[0]["error"]


def test_ctrl_c_in_the_workers_is_the_parent_s_to_act_on() -> None:
    with capture_logs() as logs:
        results = map_chunks(ctrl_c_in_a_worker, list(range(9)), workers=2, chunk=2)
    assert results == [n + 1 for n in range(9)]
    assert logs == []  # no worker died of it, nothing was redone here


@pytest.mark.parametrize("workers", [1, 2])
def test_asked_to_stop_the_work_ends_at_the_next_chunk(workers: int) -> None:
    stop = threading.Event()
    done: list[int] = []

    def counted(items: Sequence[int]) -> list[int]:
        done.extend(items)
        stop.set()  # as another thread would, while the first chunk is worked on
        return list(items)

    if workers == 1:
        with pytest.raises(Interrupted):
            map_chunks(counted, list(range(10)), workers=1, chunk=3, stop=stop)
        assert done == [0, 1, 2]
    else:
        stop.set()
        with pytest.raises(Interrupted):
            map_chunks(squares, list(range(400)), workers=2, chunk=2, stop=stop)
        assert multiprocessing.active_children() == []  # the pool is shut down
