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
from pathlib import Path
from typing import Any
from urllib.parse import quote

from broker.audit.checkpoint import SignedCheckpoint
from broker.errors import AuditError, JcuError
from broker.files import private_dir

STATE_VERSION = 2


@dataclass(frozen=True, slots=True)
class AuditState:
    enforcement_point: str
    tree_size: int
    frontier: tuple[bytes, ...]
    last_leaf_hash: bytes
    partition: int
    #: the offset after the record with index tree_size - 1 (where read-back resumes)
    next_offset: int
    #: the last checkpoint (of size tree_size), and where it went on the checkpoints topic
    checkpoint: SignedCheckpoint | None
    checkpoint_partition: int = 0
    checkpoint_offset: int = -1
    #: the topic the tree is on (a node's states are seen checkpoints of that topic only)
    decisions_topic: str = ""


def state_path(state_dir: Path, enforcement_point: str) -> Path:
    return state_dir / f"{quote(enforcement_point, safe='')}.audit.json"


def own_checkpoints(state_dir: Path, decisions_topic: str) -> list[SignedCheckpoint]:
    """The last checkpoint of every enforcement point whose state is in `state_dir` and
    whose tree is on `decisions_topic`: what this node itself saw of its own logs."""
    out = []
    for path in sorted(state_dir.glob("*.audit.json")):
        try:
            state = load_state(path)
        except AuditError:
            continue  # the log itself refuses to start on it, saying why
        if (
            state is not None
            and state.checkpoint is not None
            and state.decisions_topic == decisions_topic
        ):
            out.append(state.checkpoint)
    return out


def _checkpoint_from(note: Any) -> SignedCheckpoint | None:
    if note is None:
        return None
    try:
        return SignedCheckpoint.parse(str(note))
    except JcuError as exc:
        raise ValueError(f"its checkpoint does not parse: {exc}") from None


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
            raise AuditError(
                f"audit state {path} has version {raw['version']}, not {STATE_VERSION}; move it "
                "away to rebuild the tree from the topic"
            )
        return AuditState(
            enforcement_point=raw["enforcement_point"],
            tree_size=int(raw["tree_size"]),
            frontier=tuple(bytes.fromhex(h) for h in raw["frontier"]),
            last_leaf_hash=bytes.fromhex(raw["last_leaf_hash"]),
            partition=int(raw["partition"]),
            next_offset=int(raw["next_offset"]),
            checkpoint=_checkpoint_from(raw["checkpoint"]),
            checkpoint_partition=int(raw["checkpoint_partition"]),
            checkpoint_offset=int(raw["checkpoint_offset"]),
            decisions_topic=str(raw["decisions_topic"]),
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
            "checkpoint": state.checkpoint.note() if state.checkpoint is not None else None,
            "checkpoint_partition": state.checkpoint_partition,
            "checkpoint_offset": state.checkpoint_offset,
            "decisions_topic": state.decisions_topic,
        },
        indent=1,
    ).encode()
    private_dir(path.parent)
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
        private_dir(self._path.parent)
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


def _resume_json(p: Any) -> dict[str, Any]:
    return {
        "tree_size": p.tree_size,
        "frontier": [h.hex() for h in p.frontier],
        "last_leaf_hash": p.last_leaf_hash.hex(),
        "partition": p.partition,
        "next_offset": p.next_offset,
        "checkpoint": p.checkpoint_note,
        "checkpoint_partition": p.checkpoint_partition,
        "checkpoint_offset": p.checkpoint_offset,
        "checkpoints": p.checkpoints,
        "decisions": p.decisions,
    }


def save_verify_state(path: Path, state: Any) -> None:
    """A `broker.audit.verify.VerifyState`, written atomically (0600)."""
    from broker.files import write_private

    body = {
        "version": 1,
        "points": {ep: _resume_json(p) for ep, p in sorted(state.points.items())},
        "ends": {str(k): v for k, v in sorted(state.ends.items())},
        "starts": {ep: list(v) for ep, v in sorted(state.starts.items())},
    }
    write_private(path, json.dumps(body, indent=1).encode())


def load_verify_state(path: Path) -> Any:
    """The `VerifyState` saved at `path` (an empty one if none; AuditError if damaged)."""
    from broker.audit.verify import ResumePoint, VerifyState

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return VerifyState()
    except (OSError, json.JSONDecodeError) as exc:
        raise AuditError(
            f"verification state {path} is unreadable ({exc}); remove it to verify from the start"
        ) from None
    try:
        if raw["version"] != 1:
            raise ValueError(f"version {raw['version']}")
        points = {
            ep: ResumePoint(
                tree_size=int(p["tree_size"]),
                frontier=tuple(bytes.fromhex(h) for h in p["frontier"]),
                last_leaf_hash=bytes.fromhex(p["last_leaf_hash"]),
                partition=int(p["partition"]),
                next_offset=int(p["next_offset"]),
                checkpoint_note=str(p["checkpoint"]),
                checkpoint_partition=int(p["checkpoint_partition"]),
                checkpoint_offset=int(p["checkpoint_offset"]),
                checkpoints=int(p["checkpoints"]),
                decisions=int(p["decisions"]),
            )
            for ep, p in raw["points"].items()
        }
        ends = {int(k): int(v) for k, v in raw["ends"].items()}
        starts = {ep: (int(v[0]), int(v[1])) for ep, v in raw["starts"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditError(
            f"verification state {path} is malformed ({exc}); remove it to verify from the start"
        ) from None
    return VerifyState(points, ends, starts)
