"""An enforcement point's audit state on disk: where its tree stood at its last checkpoint.

Written atomically (temporary file, fsync, rename, fsync of the directory), so
after a crash the file is either the previous state or the new one, never a
mix. A lock file keeps a second process from writing the same tree.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from broker.audit.checkpoint import Checkpoint
from broker.errors import AuditError

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class AuditState:
    enforcement_point: str
    tree_size: int
    frontier: tuple[bytes, ...]
    last_leaf_hash: bytes
    partition: int
    #: the offset after the record with index tree_size - 1 (where read-back resumes)
    next_offset: int
    checkpoint: Checkpoint | None


def state_path(state_dir: Path, enforcement_point: str) -> Path:
    return state_dir / f"{quote(enforcement_point, safe='')}.audit.json"


def _checkpoint_json(cp: Checkpoint | None) -> dict[str, Any] | None:
    if cp is None:
        return None
    return {
        "origin": cp.origin,
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash.hex(),
        "time_ms": int(cp.time.timestamp() * 1000),
        "key_id": cp.key_id,
        "signature": cp.signature.hex(),
    }


def _checkpoint_from(data: Any) -> Checkpoint | None:
    if data is None:
        return None
    return Checkpoint(
        origin=data["origin"],
        tree_size=int(data["tree_size"]),
        root_hash=bytes.fromhex(data["root_hash"]),
        time=datetime.fromtimestamp(data["time_ms"] / 1000, UTC),
        key_id=data["key_id"],
        signature=bytes.fromhex(data["signature"]),
    )


def load_state(path: Path) -> AuditState | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise AuditError(
            f"audit state {path} is unreadable ({exc}); move it away to rebuild "
            f"the tree from the topic"
        ) from None
    try:
        if raw["version"] != STATE_VERSION:
            raise AuditError(f"audit state {path} has version {raw['version']}")
        return AuditState(
            enforcement_point=raw["enforcement_point"],
            tree_size=int(raw["tree_size"]),
            frontier=tuple(bytes.fromhex(h) for h in raw["frontier"]),
            last_leaf_hash=bytes.fromhex(raw["last_leaf_hash"]),
            partition=int(raw["partition"]),
            next_offset=int(raw["next_offset"]),
            checkpoint=_checkpoint_from(raw["checkpoint"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditError(
            f"audit state {path} is malformed ({exc}); move it away to rebuild "
            f"the tree from the topic"
        ) from None


def save_state(path: Path, state: AuditState) -> None:
    body = json.dumps(
        {
            "version": STATE_VERSION,
            "enforcement_point": state.enforcement_point,
            "tree_size": state.tree_size,
            "frontier": [h.hex() for h in state.frontier],
            "last_leaf_hash": state.last_leaf_hash.hex(),
            "partition": state.partition,
            "next_offset": state.next_offset,
            "checkpoint": _checkpoint_json(state.checkpoint),
        },
        indent=1,
    ).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateLock:
    """An exclusive advisory lock on one enforcement point's state (released on process exit)."""

    def __init__(self, path: Path) -> None:
        self._path = path.with_name(path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AuditError(
                f"another process holds the audit log state {self._path}; "
                f"one enforcement point, one writer"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
