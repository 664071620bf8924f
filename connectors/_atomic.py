"""Durable file writes: the data is on disk (fsync) before the caller acknowledges anything.

Sinks write whole files through a temporary file and a rename, so a reader never
sees half a file and a crash leaves either the old state or the new one. A sink
writes a consumer batch's files without syncing them one by one, then makes the
batch durable at once (`sync_files`): their fsyncs run together, so the
filesystem's journal commits them in a few transactions instead of one each.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from broker.files import FILE_MODE, private_dir, write_whole

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: fsyncs of one batch in flight at once: enough for the journal to commit them together.
SYNC_CONCURRENCY = 16


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
    once each: the batch is on disk. The fsyncs run concurrently (`SYNC_CONCURRENCY`);
    the first that fails is raised once all have finished."""
    files = list(dict.fromkeys(paths))
    directories = list(dict.fromkeys(p.parent for p in files))
    if len(files) <= 1:
        for path in files:
            _fsync_file(path)
    else:
        with ThreadPoolExecutor(min(SYNC_CONCURRENCY, len(files))) as pool:
            for done in list(pool.map(_fsync_file_or_error, files)):
                if done is not None:
                    raise done
    for directory in directories:
        _fsync_dir(directory)


class Unsynced:
    """Files a sink wrote with `durable=False` and has not made durable yet: synced
    together at flush, and kept for the retried flush when that fails."""

    def __init__(self) -> None:
        self._paths: set[Path] = set()

    def add(self, path: Path) -> None:
        self._paths.add(path)

    def sync(self) -> None:
        written, self._paths = self._paths, set()
        try:
            sync_files(written)
        except OSError:
            self._paths |= written  # synced again by the retried flush
            raise


def _fsync_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # replaced or removed since: its directory's fsync covers that
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file_or_error(path: Path) -> OSError | None:
    try:
        _fsync_file(path)
    except OSError as exc:
        return exc
    return None


def append_lines(batches: Mapping[Path, Iterable[bytes]]) -> None:
    """Append each file's lines with one write and one fsync per file (a torn earlier tail
    closed off first): a batch of JSON lines durable at once. A write that fails part way
    is cut back, so a retry does not leave half a line before the whole one."""
    created = []
    for path, lines in batches.items():
        data = b"".join(lines)
        if not data:
            continue
        private_dir(path.parent)
        if not path.exists():
            created.append(path)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a crash mid-line left a torn tail: keep lines apart
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
    for directory in dict.fromkeys(p.parent for p in created):
        _fsync_dir(directory)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def append_durable(path: Path, line: bytes) -> Path:
    """Append one line with a single write, then fsync; a torn earlier tail is closed off first."""
    append_lines({path: [line]})
    return path
