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
from typing import TextIO

from broker.errors import ConfigError

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700; an existing one is tightened to 0700.
    (`mkdir(parents=True)` would make the parents with the umask's mode, e.g. 0755.)"""
    missing = []
    for parent in (path, *path.parents):
        if parent.exists():
            break
        missing.append(parent)
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE, exist_ok=True)
        directory.chmod(DIR_MODE)  # whatever the umask
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    return path


def check_private_home(root: Path, *, what: str = "JCU_HOME") -> None:
    """Refuse a home others may read or enter (keys, decrypted records, state): one line
    saying what to run. A home that does not exist yet is not refused here."""
    try:
        mode = root.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    if mode & 0o077:
        raise ConfigError(
            f"{what}={root} is open to other accounts (mode {mode:04o}); run "
            f"`chmod 700 {root}` (and check who could read it) before using it"
        )


def private_file(path: Path) -> Path:
    """Make sure `path` exists as a file only its owner may read (0600, in a 0700
    directory), e.g. before SQLite opens it: its journal and WAL files take its mode."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def open_private(path: Path) -> TextIO:
    """Open `path` to append text (UTF-8; created 0600 in a 0700 directory, an existing
    file tightened to 0600): for files written a line at a time (JSON lines)."""
    private_file(path)
    return open(path, "a", encoding="utf-8")


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
