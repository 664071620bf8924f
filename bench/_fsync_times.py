"""`jcu` with the moment every fsync returns written down: when a sink's lines became durable.

Run: python -m bench._fsync_times TIMES_FILE <jcu arguments...>

An instrument for `bench.latency`, not a way to run a node: it wraps `os.fsync` and
`os.fdatasync` so that, after each returns on a regular file, one line
`<time.monotonic()> <the file's size> <its path>` is appended to TIMES_FILE (one
unbuffered write: the bench reads it while the subscriber runs). CLOCK_MONOTONIC is
one clock for every process of the machine, so these times compare with the
publisher's. Everything up to that size in that file is on disk at that time.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable


def _noting(real: Callable[[int], None], out: int) -> Callable[[int], None]:
    def synced(fd: int) -> None:
        real(fd)
        done = time.monotonic()
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            path = os.readlink(f"/proc/self/fd/{fd}")
            os.write(out, f"{done:.6f} {info.st_size} {path}\n".encode())

    return synced


def main() -> None:
    times, argv = sys.argv[1], sys.argv[2:]
    out = os.open(times, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fsync = _noting(os.fsync, out)
    os.fdatasync = _noting(os.fdatasync, out)
    from broker.cli import main as jcu

    sys.argv = ["jcu", *argv]
    jcu()


if __name__ == "__main__":
    main()
