"""The fault hook (broker/faults.py): a signal sent from a worker thread is heard before
the work goes on, so a test that stops a run there is deterministic."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import pytest

from broker import faults


def test_a_point_on_a_worker_thread_waits_until_its_signal_is_heard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heard = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        # run by the main thread, later than the worker's next step would come
        threading.Timer(0.2, heard.set).start()

    previous = signal.signal(signal.SIGUSR1, handler)
    monkeypatch.setenv(faults.ENV, "chunk@2:SIGUSR1")
    seen: list[bool] = []

    def worker() -> None:
        faults.point("chunk", 1, heard=heard)  # another count: no signal, no wait
        seen.append(heard.is_set())
        faults.point("chunk", 2, heard=heard)
        seen.append(heard.is_set())

    try:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(15)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert seen == [False, True]
