"""A file publish's progress, written as it goes, so a killed run can be resumed.

`$JCU_HOME/progress/<participant>/<key>.json` (0600 in 0700 directories), one
per input file (the key is a hash of its absolute path): the file's SHA-256,
its format, how many objects it holds and how many the run has handled, the
counts so far (published, already sent, withheld, skipped, not sent), when,
and whether the run finished or why it stopped. It is rewritten whole after
every chunk (`broker.files.write_private`), so a kill leaves the last one.

Resuming needs no more than this: every object's message id is derived from
the object (broker.pep.message_ids), so what the killed run sent is recognised
by the sent index and not sent again. `--resume` checks that the file is the
one the interrupted run read and says where that run stopped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.clock import utc_now
from broker.errors import ConfigError
from broker.files import write_private

if TYPE_CHECKING:
    from connectors.soc.publishing import Tally


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class RunProgress:
    """Where the run of one input file stands (as last written)."""

    source: str
    sha256: str
    format: str
    objects: int
    handled: int
    counts: dict[str, int]
    updated: str
    finished: bool
    stopped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "format": self.format,
            "objects": self.objects,
            "handled": self.handled,
            "counts": self.counts,
            "updated": self.updated,
            "finished": self.finished,
            "stopped": self.stopped,
        }


class ProgressFile:
    """The progress file of `source` published by `participant` in the node's `home`."""

    def __init__(self, home: Path, participant: str, source: Path) -> None:
        self.source = source.resolve()
        key = hashlib.sha256(str(self.source).encode()).hexdigest()[:32]
        self.path = home / "progress" / participant / f"{key}.json"

    def load(self) -> RunProgress | None:
        try:
            raw = json.loads(self.path.read_bytes())
            return RunProgress(**raw)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"the progress file {self.path} is damaged ({exc}); remove it and re-run "
                "without --resume (what was sent is recognised)"
            ) from None

    def save(
        self,
        digest: str,
        tally: Tally,
        objects: int,
        *,
        finished: bool = False,
    ) -> RunProgress:
        progress = RunProgress(
            str(self.source),
            digest,
            tally.format,
            objects,
            tally.handled,
            dict(tally.counts),
            utc_now().isoformat(),
            finished,
            tally.stopped,
        )
        write_private(self.path, json.dumps(progress.to_json(), indent=1).encode())
        return progress
