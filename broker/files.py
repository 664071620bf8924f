"""Private state on disk: files 0600 in directories 0700, written whole or not at all.

Keys, registry state, ledgers and anything decrypted belong to the account that
runs the node and to nobody else on the host; a crash must leave either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700; an existing one is tightened to 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    return path


def write_private(path: Path, data: bytes) -> Path:
    """Write `data` to `path` (0600, in a 0700 directory), whole or not at all."""
    private_dir(path.parent)
    return write_whole(path, data, mode=FILE_MODE)


def write_whole(path: Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write `data` to `path` through a temporary file, fsync, rename and a directory fsync:
    a reader never sees half a file and a crash leaves the old one or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return path
