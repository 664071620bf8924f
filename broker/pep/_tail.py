"""A file sink's duplicate check in bounded memory: the last few thousand keys, not all.

A sink sees a record a second time only when a crash came between its write and
the ledger's commit of that batch: the subscriber drops everything the ledger
settled, so the repeats are among the last batch or two written. So a sink
remembers the keys of its last `limit` writes (`RecentKeys`), and at open reads
only the end of its file, backwards, until it has that many (`last_lines`): its
memory and start-up time depend on the configuration, not on the file's history.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from pathlib import Path

#: Keys a file sink remembers: well above the largest batch (`--batch-size` <= 10,000).
DEFAULT_REMEMBER = 25_000
_CHUNK = 1 << 20


class RecentKeys:
    """A set that keeps only its `limit` most recently added keys."""

    def __init__(self, limit: int = DEFAULT_REMEMBER) -> None:
        if limit < 1:
            raise ValueError("a sink remembers at least one key")
        self.limit = limit
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Hashable) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.limit:
            self._keys.popitem(last=False)


def last_lines(path: Path, limit: int) -> Iterator[bytes]:
    """Up to `limit` complete lines from the end of `path`, last first, read backwards in
    chunks (a partial last line, which a crash left, is not among them)."""
    produced = 0
    with path.open("rb") as f:
        position = f.seek(0, os.SEEK_END)
        pending = b""  # the head of a line whose start is further back
        found_end = False  # the last newline: what follows it is torn
        while position > 0 and produced < limit:
            step = min(_CHUNK, position)
            position -= step
            f.seek(position)
            data = f.read(step) + pending
            if not found_end:
                cut = data.rfind(b"\n")
                if cut < 0:
                    pending = b""  # all of it belongs to the torn line
                    continue
                data, found_end = data[:cut], True
            parts = data.split(b"\n")
            pending = parts.pop(0) if position > 0 else b""
            for line in reversed(parts):
                if line:
                    yield line
                    produced += 1
                    if produced >= limit:
                        return


def drop_torn_tail(path: Path) -> None:
    """Cut a last line left half-written by a crash (its record comes again from Kafka),
    reading only the file's end."""
    with path.open("r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        position = size
        while position > 0:
            step = min(_CHUNK, position)
            position -= step
            f.seek(position)
            cut = f.read(step).rfind(b"\n")
            if cut >= 0:
                f.truncate(position + cut + 1)
                return
        f.truncate(0)
