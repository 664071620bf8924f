"""bench._fsync_times notes when each fsync of a regular file returned, and how long it was."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench._fsync_times import _noting


def test_each_fsync_is_noted_with_the_size_it_made_durable(tmp_path: Path) -> None:
    times, sink = tmp_path / "times", tmp_path / "sink.jsonl"
    out = os.open(times, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    synced = _noting(os.fsync, out)
    fd = os.open(sink, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        before = time.monotonic()
        os.write(fd, b"one\n")
        synced(fd)
        os.write(fd, b"two\n")
        synced(fd)
    finally:
        os.close(fd)
        os.close(out)
    lines = [line.split(" ", 2) for line in times.read_text().splitlines()]
    real = str(sink.resolve())
    assert [(size, path) for _, size, path in lines] == [("4", real), ("8", real)]
    assert before <= float(lines[0][0]) <= float(lines[1][0]) <= time.monotonic()
