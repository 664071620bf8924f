"""`jcu sitrep`: the report holds what its reader is entitled to receive and nothing else;
the PDF carries the same counts as the data (read back with pypdf)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.connectors.console.fixture import Console

pytestmark = pytest.mark.kafka


def _sitrep(console: Console, org: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", "sitrep", "--since", "2h", "--as", org, *args],
        env=console.world.env(org),
        capture_output=True,
        check=False,
    )


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(path.read_bytes()))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_a_sitrep_omits_what_its_reader_may_not_receive(console: Console, tmp_path: Path) -> None:
    t = console.traffic
    for org, sees, never in (
        ("enisa", t.clear_value, t.red_value),  # RED was for cert-eu and isac-energy only
        ("cert-eu", t.red_value, None),
    ):
        out = tmp_path / f"{org}.pdf"
        done = _sitrep(console, org, "--format", "pdf", "--out", str(out))
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        text = _pdf_text(out)
        assert "Integrated EU Cybersecurity Situation Report" in text
        assert "entitled to receive" in text.replace("\n", " ")
        assert sees in text, org
        if never is not None:
            assert never not in text, f"{org}'s report shows what it may not receive"
        data = json.loads(_sitrep(console, org, "--format", "json").stdout)
        values = {i["value"] for i in data["top_indicators"]}
        assert sees in values and (never is None or never not in values)


def test_the_pdf_carries_the_counts(console: Console, tmp_path: Path) -> None:
    out = tmp_path / "eeas.pdf"
    assert _sitrep(console, "eeas-intcen", "--format", "pdf", "--out", str(out)).returncode == 0
    data = json.loads(_sitrep(console, "eeas-intcen", "--format", "json").stdout)
    text = " ".join(_pdf_text(out).split())
    m = re.search(r"Messages received: (\d+) \(previous period (\d+)", text)
    assert m is not None, text[:2000]
    assert int(m.group(1)) == data["total"]["count"] >= 2  # cert-eu's report, enisa's sitrep
    for row in data["by_tlp"]:
        assert f"{row['key']} {row['count']} {row['previous']}" in text
    # the crisis of the traffic is listed with who declared it
    assert console.traffic.incident in text and "eu-cyclone" in text


def test_bad_input_is_one_line(console: Console) -> None:
    done = _sitrep(console, "enisa", "--since", "soon")
    err = done.stderr.decode()
    assert done.returncode != 0 and "Traceback" not in err and err.count("\n") == 1
    other = _sitrep(console, "cert-eu", "--as", "enisa")  # enisa's name on cert-eu's node
    assert other.returncode != 0
