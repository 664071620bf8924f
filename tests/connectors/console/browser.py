"""Headless Chromium for the browser tests: Debian's `chromium`, driven by Playwright.

The browser comes from a setting (JCU_CHROMIUM), else `chromium` on PATH;
Playwright never downloads one. Outside CI a machine without it skips, saying
how to install it; in CI (CI=true) its absence fails. Screenshots go to
JCU_ARTEFACTS (default: a `console-screenshots` directory under pytest's
temporary directory), printed by the tests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

INSTALL = "install Chromium with `apt-get install chromium` (Debian) or set JCU_CHROMIUM"


def chromium_path() -> str:
    path = os.environ.get("JCU_CHROMIUM") or shutil.which("chromium") or ""
    if path and Path(path).exists():
        return path
    if os.environ.get("CI"):
        pytest.fail(f"the browser tests need Chromium in CI: {INSTALL} (.ci/run does)")
    pytest.skip(f"no Chromium found: {INSTALL}")


def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("JCU_ARTEFACTS")
    out = Path(where) if where else tmp_path_factory.getbasetemp() / "console-screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out
