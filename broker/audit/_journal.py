"""The writer's own memory of what it sent: (index, leaf hash) of records not yet checkpointed.

Every enforcement point may write to `jcu.audit.decisions`, and Kafka cannot
restrict writes by key, so a restart must not adopt whatever continues its
chain on the topic: it adopts only records it finds here. Lines are written
(not fsync'd) before the records are handed to Kafka, so they survive a crash
of the process; after a power loss a missing line makes the restart refuse to
adopt and ask for `jcu audit verify` rather than sign over an unknown record.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        # What the file holds, kept in memory once read: a checkpoint then rewrites the
        # short tail instead of reading the whole file back.
        self._entries: dict[int, bytes] | None = None

    def read(self) -> dict[int, bytes]:
        self._entries = self._load()
        return dict(self._entries)

    def _load(self) -> dict[int, bytes]:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return {}
        out: dict[int, bytes] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit():
                try:
                    out[int(parts[0])] = bytes.fromhex(parts[1])
                except ValueError:
                    continue  # a torn last line
        return out

    def add(self, entries: Iterable[tuple[int, bytes]]) -> None:
        if self._entries is None:
            self._entries = self._load()
        new = list(entries)
        self._entries.update(new)
        lines = "".join(f"{i} {leaf.hex()}\n" for i, leaf in new)
        if not lines:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, lines.encode("ascii"))
        finally:
            os.close(fd)

    def keep_from(self, index: int) -> None:
        """Forget what a checkpoint now covers (indices below `index`)."""
        known = self._entries if self._entries is not None else self._load()
        kept = {i: leaf for i, leaf in known.items() if i >= index}
        self._entries = kept
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(f"{i} {leaf.hex()}\n" for i, leaf in sorted(kept.items())))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
