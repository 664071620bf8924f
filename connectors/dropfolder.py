"""A drop folder: files put into a directory are handled once, then moved aside.

Handled files move to `done/` (with the handler's summary as
`<name>.summary.json`), refused ones to `failed/` with `<name>.reason.txt`
saying why, so the folder itself only ever holds work still to do. Files whose
name starts with a dot or ends in .tmp/.part (uploads in progress) are left
alone, and in watch mode a file is only taken once it has not changed for
`settle` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.errors import ConfigError, Interrupted, JcuError, KafkaUnavailable
from broker.files import private_dir
from connectors._atomic import write_atomic

DONE = "done"
FAILED = "failed"
_IN_PROGRESS = (".tmp", ".part", ".partial", ".crdownload")

#: Handles one file; returns a JSON-ready summary; raises JcuError to refuse it.
Handler = Callable[[Path], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Processed:
    """What happened to one dropped file."""

    name: str
    ok: bool
    moved_to: Path
    summary: dict[str, Any] | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "ok": self.ok,
            "moved_to": str(self.moved_to),
            "reason": self.reason or None,
            "summary": self.summary,
        }


class DropFolder:
    """The pending files of `directory` and where they go when handled."""

    def __init__(self, directory: Path, *, settle: float = 1.0) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ConfigError(f"{self.directory} is not a directory; create it or pass another")
        self.settle = settle

    def pending(self, *, settled_only: bool = True) -> list[Path]:
        """Files waiting, oldest first; with `settled_only`, only those unchanged for `settle` s."""
        now = time.time()
        found = []
        for entry in os.scandir(self.directory):
            if not entry.is_file(follow_symlinks=False) or entry.name.startswith("."):
                continue
            if entry.name.lower().endswith(_IN_PROGRESS):
                continue
            mtime = entry.stat(follow_symlinks=False).st_mtime
            if settled_only and now - mtime < self.settle:
                continue
            found.append((mtime, entry.name))
        return [self.directory / name for _, name in sorted(found)]

    def _move(self, path: Path, where: str) -> Path:
        target_dir = self.directory / where
        private_dir(target_dir)
        target = target_dir / path.name
        if target.exists():  # the same name dropped again: keep both
            target = target_dir / f"{path.stem}-{time.strftime('%Y%m%dT%H%M%S')}{path.suffix}"
        os.replace(path, target)
        return target

    def done(self, path: Path, summary: dict[str, Any]) -> Processed:
        target = self._move(path, DONE)
        text = json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n"
        write_atomic(target.with_name(target.name + ".summary.json"), text.encode())
        return Processed(path.name, True, target, summary=summary)

    def failed(self, path: Path, reason: str) -> Processed:
        target = self._move(path, FAILED)
        write_atomic(target.with_name(target.name + ".reason.txt"), (reason + "\n").encode())
        return Processed(path.name, False, target, reason=reason)

    async def handle(self, path: Path, handler: Handler) -> Processed:
        """Run `handler`; a JcuError moves the file to failed/, any other error propagates.

        An unexpected error (the broker is down, a bug), an interruption or Kafka
        out of reach leaves the file where it is: it is not the file's fault, and
        it is tried again next time (what was sent of it is recognised then).
        """
        try:
            summary = await handler(path)
        except (Interrupted, KafkaUnavailable):
            raise  # the run stopped (Ctrl-C, Kafka gone): the file stays, for the next run
        except JcuError as exc:
            return self.failed(path, str(exc))
        return self.done(path, summary)


async def watch(
    folder: DropFolder,
    handler: Handler,
    *,
    once: bool,
    interval: float = 2.0,
    stop: asyncio.Event | None = None,
    on_processed: Callable[[Processed], None] | None = None,
) -> list[Processed]:
    """Handle every file dropped into `folder`; with `once`, what is there now, then return."""
    stop = stop or asyncio.Event()
    processed: list[Processed] = []
    while not stop.is_set():
        for path in folder.pending(settled_only=not once):
            if stop.is_set():
                break
            result = await folder.handle(path, handler)
            processed.append(result)
            if on_processed is not None:
                on_processed(result)
        if once:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
    return processed
