"""Durable file writes: the data is on disk (fsync) before the caller acknowledges anything.

Sinks write whole files through a temporary file and a rename, so a reader never
sees half a file and a crash leaves either the old state or the new one.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from broker.files import FILE_MODE, private_dir, write_whole

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-name-safe rendering of an id (no separators, no leading dot)."""
    return _UNSAFE.sub("_", text).lstrip(".")[:120] or "_"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """Write `data` to `path` via temp file + fsync + rename + directory fsync.

    With `durable=False` the two fsyncs are left to the caller, who makes a whole
    batch durable at once (`sync_files`) before acknowledging it.
    """
    private_dir(path.parent)  # received content: the directory is 0700, the file 0600
    if durable:
        return write_whole(path, data, mode=FILE_MODE)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def sync_files(paths: Iterable[Path]) -> None:
    """fsync files written with `durable=False` (those still there), then their directories
    once each: the batch is on disk."""
    directories = set()
    for path in paths:
        directories.add(path.parent)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # replaced or removed since: its directory's fsync covers that
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for directory in directories:
        _fsync_dir(directory)


def append_durable(path: Path, line: bytes) -> Path:
    """Append one line with a single write, then fsync; a torn earlier tail is closed off first."""
    private_dir(path.parent)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        if not created and path.stat().st_size > 0:
            with path.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = b"\n" + line  # a crash mid-line left a torn tail: keep lines apart
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)
    return path
