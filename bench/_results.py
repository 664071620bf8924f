"""Each bench's headline figures, kept for `bench.summary` (run by `make bench` last).

A bench writes `<name>.json` into the results directory (`JCU_BENCH_RESULTS`, by
default `bench-results/` under the working directory): the figures it printed, by
a name `bench.summary` knows, and when. A bench run alone writes it too; nothing
reads it but the summary, so a stale file only shows an old figure with its date.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_ENV = "JCU_BENCH_RESULTS"


def results_dir() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or "bench-results")


def record(bench: str, figures: dict[str, float], **about: Any) -> Path:
    """Write `bench`'s figures (replacing its last run's) with the time of the run and
    anything that says how it ran (sizes, arguments)."""
    directory = results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{bench}.json"
    doc = {
        "bench": bench,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": figures,
        "about": about,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load(bench: str) -> dict[str, Any] | None:
    """What `bench` last wrote, or None if it never ran here (or its file is unreadable)."""
    try:
        doc = json.loads((results_dir() / f"{bench}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
