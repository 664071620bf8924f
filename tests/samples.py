"""Sample data for the tests: the repository's own examples/, and the public samples.

The examples (a fictitious scenario written for this project) are always there,
so every format path is tested on a fresh clone. The public STIX and MISP
samples are not part of the repository: they are found through JCU_FIXTURES,
else in ../shared/fixtures beside the checkout when present; tests that need
them skip with a reason when they are absent, unless JCU_REQUIRE_FIXTURES=1
(set by .ci/run), which makes their absence an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SAMPLES = Path(os.environ.get("JCU_FIXTURES") or REPO.parent / "shared" / "fixtures")
MISSING = f"the public samples are not in {SAMPLES} (set JCU_FIXTURES to use them)"
#: Set by CI: the public samples must be there, a skip for their absence would hide it.
REQUIRE_ENV = "JCU_REQUIRE_FIXTURES"


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def public_present() -> bool:
    return (SAMPLES / "stix").is_dir() and (SAMPLES / "misp").is_dir()


needs_public = pytest.mark.skipif(not public_present(), reason=MISSING)


def example_files(*patterns: str) -> list[Path]:
    """The repository's example files matching `patterns` (e.g. "stix/*.json")."""
    return [p for pattern in patterns for p in sorted(EXAMPLES.glob(pattern))]


def public_files(*patterns: str) -> list[Path]:
    """The public sample files matching `patterns`; none when they are absent."""
    return [p for pattern in patterns for p in sorted(SAMPLES.glob(pattern))]


def sample_params(*patterns: str) -> list[Any]:
    """Parameters over our examples and the public samples: `examples/stix/x.json`,
    `public/stix/y.json`; without the public samples, one placeholder that skips saying so."""
    ours = [
        pytest.param(p, id=f"examples/{p.relative_to(EXAMPLES)}") for p in example_files(*patterns)
    ]
    theirs = [
        pytest.param(p, id=f"public/{p.relative_to(SAMPLES)}") for p in public_files(*patterns)
    ]
    if not theirs:
        theirs = [pytest.param(None, id="public", marks=pytest.mark.skip(reason=MISSING))]
    return ours + theirs
