"""`jcu demo` (what `make demo` runs) completes on a fresh state and says what happened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka


def test_demo_runs_the_scenario_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    env = {**os.environ, "JCU_HOME": str(tmp_path / "home")}
    env.pop("KAFKA_BOOTSTRAP", None)  # the demo starts its own broker, from nothing
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    for heading in (
        "who received what",
        "delivery receipts",
        "jcu audit verify",
        "files written under",
    ):
        assert heading in text
    assert "FAIL" not in text
    assert "redacted" in text  # the personal-data report reached EEAS without its personal data
    # what each subscriber wrote
    assert any((out / "enisa").glob("*.json")), "ENISA's STIX files"
    assert any((out / "isac-energy").glob("*.json")), "the ISAC's MISP files"
    assert (out / "eeas-intcen" / "eeas-intcen.jsonl").exists()
    assert (out / "eda" / "eda.jsonl").read_text().count("\n") == 1  # the situation report only
    mailbox = list((out / "cert-eu" / "siena-mailbox").glob("*.json"))
    assert len(mailbox) == 1
    # the demo cleans up after itself: no broker left running from its state
    assert not list((tmp_path / "home" / "demo").glob("*/kafka/kafka.json"))
