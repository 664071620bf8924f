"""The public samples: skipped with a reason when absent, an error when CI requires them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.samples import REPO, REQUIRE_ENV

STIX_SAMPLES = (
    "tests/connectors/soc/test_stix.py::test_every_sample_object_travels_or_is_skipped_once"
)


def pytest_run(fixtures: Path, require: bool, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JCU_FIXTURES": str(fixtures)}
    env.pop(REQUIRE_ENV, None)
    if require:
        env[REQUIRE_ENV] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_without_the_samples_their_tests_skip_saying_where_they_looked(tmp_path: Path) -> None:
    done = pytest_run(tmp_path / "none", False, STIX_SAMPLES)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "SKIPPED [1]" in done.stdout and f"not in {tmp_path / 'none'}" in done.stdout
    assert " passed" in done.stdout  # ... and our own examples still ran


def test_required_samples_that_are_missing_stop_the_run_in_one_line(tmp_path: Path) -> None:
    done = pytest_run(tmp_path / "none", True, STIX_SAMPLES)
    assert done.returncode != 0
    (line,) = [x for x in done.stderr.splitlines() if REQUIRE_ENV in x]
    assert f"{REQUIRE_ENV}=1 but the public samples are not in {tmp_path / 'none'}" in line


def test_required_samples_that_turn_out_empty_fail_instead_of_skipping(tmp_path: Path) -> None:
    for kind in ("stix", "misp"):
        (tmp_path / kind).mkdir()  # there, but nothing in them: the placeholder would skip
    done = pytest_run(tmp_path, True, STIX_SAMPLES)
    assert done.returncode == 1, done.stdout[-2000:]
    # the skip happens while setting the test up: it is reported as an error there
    assert done.stdout.rstrip().splitlines()[-1].startswith("4 passed, 1 error")
