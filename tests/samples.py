"""Where the public STIX and MISP samples are: JCU_FIXTURES, else ../shared/fixtures.

They are not part of the repository; tests that read them skip with a reason
when they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("JCU_FIXTURES") or REPO.parent / "shared" / "fixtures")
MISSING = f"the public samples are not in {SAMPLES} (set JCU_FIXTURES)"
