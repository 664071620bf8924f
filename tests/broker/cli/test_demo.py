"""`jcu demo` (what `make demo` runs) completes on a fresh state and says what happened."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pypdf import PdfReader

from broker.kafka.local import free_port
from tests.samples import EXAMPLES

pytestmark = pytest.mark.kafka


def _serve_and_stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Read the demo's output until it serves the console, look at the console, stop it."""
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 300
    url = None
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"operator console: (http://127\.0\.0\.1:\d+/)", line)
        if m:
            url = m.group(1)
            break
        assert time.monotonic() < deadline
    assert url is not None, "".join(lines)[-3000:]
    flows = httpx.get(url + "api/flows", params={"since": "1h"}, timeout=30).json()
    assert any(f["from"] == "soc-fr" and f["to"] == "enisa" for f in flows["flows"])
    page = httpx.get(url + "messages", timeout=30)
    assert page.status_code == 200 and "INC-2026-0042" in page.text
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    return "".join(lines) + rest, err


def test_demo_runs_the_scenario_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    env = {**os.environ, "JCU_HOME": str(tmp_path / "home")}
    env.pop("KAFKA_BOOTSTRAP", None)  # the demo starts its own broker, from nothing
    env.pop("JCU_FIXTURES", None)  # ... and plays the shipped scenario, as `make demo` does
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "broker.cli",
            "demo",
            "--out",
            str(out),
            "--serve",
            "--console-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        text, stderr = _serve_and_stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    for heading in (
        "who received what",
        "delivery receipts",
        "jcu audit verify",
        "files written under",
    ):
        assert heading in text
    assert "FAIL" not in text
    # the shipped examples were played: ENISA holds the campaign report, as STIX
    (report,) = [
        o["id"]
        for o in json.loads((EXAMPLES / "stix" / "night-ward-campaign-report.json").read_text())[
            "objects"
        ]
        if o["type"] == "report"
    ]
    assert (out / "enisa" / f"{report}.stix.json").is_file()
    # The assistance episode during the crisis: flagged, offered, one refused, deployed.
    assert "mutual assistance during the crisis" in text
    assert "request for FR (AMBER, CRISIS)" in text
    assert "refused (no-mandate)" in text
    assert "DEPLOYED CRISIS, 3 offers, accepted cert-eu, enisa" in text
    assert "redacted" in text  # the personal-data report reached EEAS without its personal data
    # what each subscriber wrote
    assert any((out / "enisa").glob("*.json")), "ENISA's STIX files"
    assert any((out / "isac-energy").glob("*.json")), "the ISAC's MISP files"
    assert (out / "eeas-intcen" / "eeas-intcen.jsonl").exists()
    assert (out / "eda" / "eda.jsonl").read_text().count("\n") == 1  # the situation report only
    mailbox = list((out / "cert-eu" / "siena-mailbox").glob("*.json"))
    assert len(mailbox) == 1
    # each situation report counts what its reader received: EDA only the situation report
    eda = " ".join(p.extract_text() for p in PdfReader(out / "sitrep" / "eda.pdf").pages)
    assert "Messages received: 1 " in " ".join(eda.split())
    assert "entitled to receive" in " ".join(eda.split())
    # secured: each organisation's node connected as its own Kafka principal
    assert "User:enisa" in text and "User:registry-authority" in text
    # the demo cleans up after itself: no broker left running from its state
    assert (tmp_path / "home" / "demo").is_dir()
    assert not list((tmp_path / "home" / "demo").glob("*/kafka/node-*/kafka.json"))
