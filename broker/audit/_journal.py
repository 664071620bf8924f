"""The writer's own memory of what it sent: each leaf not yet under a checkpoint, whole.

Every enforcement point may write to `jcu.audit.decisions`, and Kafka cannot
restrict writes by key, so a restart must not adopt whatever continues its
chain on the topic; and an enforcement point may not read the topic at all
(only auditors do). So the journal keeps each leaf's index, hash and bytes,
written (not fsync'd) before the leaf is handed to Kafka: they survive a crash
of the process, and the restart re-sends them. After a power loss a torn last
line is a leaf never sent. A line of the older form (index and hash only) is
still read; such a journal is reconciled by reading the topic back.

Beside it: the last checkpoint record, kept before it is sent (a restart
re-sends it rather than sign another tree of that size), and the holds of
the callers that may ask for leaves after a crash (`AuditLog.hold`), saved
when a holder is new or goes back, and when the journal is cut at a checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterable
from pathlib import Path

from broker.audit._codec import decode_checkpoint
from broker.audit.checkpoint import SignedCheckpoint
from broker.errors import JcuError
from broker.merkle import leaf_hash
from broker.schemas import SchemaStore

#: index -> (leaf hash, leaf bytes or None for a line of the older form)
Entries = dict[int, tuple[bytes, bytes | None]]


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        # What the file holds, kept in memory once read: a checkpoint then rewrites the
        # short tail instead of reading the whole file back.
        self._entries: Entries | None = None

    def read(self) -> dict[int, bytes]:
        """index -> leaf hash of every leaf the journal holds."""
        self._entries = self._load()
        return {i: leaf for i, (leaf, _) in self._entries.items()}

    def tail(self, first: int) -> list[tuple[int, bytes, bytes | None]]:
        """(index, leaf hash, leaf bytes) of the leaves first, first+1, ... it holds, in order."""
        self._entries = self._load()
        out = []
        index = first
        while index in self._entries:
            leaf, data = self._entries[index]
            out.append((index, leaf, data))
            index += 1
        return out

    def _load(self) -> Entries:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return {}
        out: Entries = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) not in (2, 3) or not parts[0].isdigit():
                continue
            try:
                leaf = bytes.fromhex(parts[1])
                data = base64.b64decode(parts[2], validate=True) if len(parts) == 3 else None
            except (ValueError, binascii.Error):
                continue  # a torn last line
            if data is not None and leaf_hash(data) != leaf:
                continue  # a torn last line whose base64 happens to parse
            out[int(parts[0])] = (leaf, data)
        return out

    @staticmethod
    def _line(index: int, leaf: bytes, data: bytes | None) -> str:
        if data is None:
            return f"{index} {leaf.hex()}\n"
        return f"{index} {leaf.hex()} {base64.b64encode(data).decode('ascii')}\n"

    def add(self, entries: Iterable[tuple[int, bytes, bytes]]) -> None:
        if self._entries is None:
            self._entries = self._load()
        new = list(entries)
        self._entries.update((i, (leaf, data)) for i, leaf, data in new)
        lines = "".join(self._line(i, leaf, data) for i, leaf, data in new)
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
        kept = {i: entry for i, entry in known.items() if i >= index}
        self._entries = kept
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(self._line(i, *kept[i]) for i in sorted(kept)))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    # -- beside the journal ----------------------------------------------------------

    @property
    def _checkpoint_path(self) -> Path:
        return self.path.with_suffix(".checkpoint")

    @property
    def _holds_path(self) -> Path:
        return self.path.with_suffix(".holds")

    def keep_checkpoint(self, data: bytes) -> None:
        """The checkpoint record about to be sent, as it will be sent."""
        _write_private(self._checkpoint_path, data)

    def pending_checkpoint(self, store: SchemaStore) -> tuple[SignedCheckpoint, bytes] | None:
        """The last checkpoint record kept, and its bytes (None if none, or unreadable)."""
        try:
            data = self._checkpoint_path.read_bytes()
            return decode_checkpoint(store, data).signed, data
        except (FileNotFoundError, JcuError):
            return None

    def load_holds(self) -> dict[str, int]:
        try:
            raw = json.loads(self._holds_path.read_text(encoding="utf-8"))
            return {str(k): int(v) for k, v in raw.items()}
        except (FileNotFoundError, ValueError, AttributeError, TypeError):
            return {}

    def save_holds(self, holds: dict[str, int]) -> None:
        _write_private(self._holds_path, json.dumps(holds, sort_keys=True).encode())


def _write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, mode 0600 (survives a crash of the process)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
