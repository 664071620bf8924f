"""docs/api.md's example program, run exactly as written, by two nodes on the real broker.

The code block after `<!-- api-example -->` is written to a file and run as a
program: once by cert-eu's node (`publish`: a STIX indicator made with stix2),
once by enisa's (`receive`: into the example's own sink, on a channel of its
own). What cert-eu published must be what enisa's sink was given.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.world import World

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
MARKER = "<!-- api-example -->"


def example_program(text: str) -> str:
    """The ```python block right after the marker."""
    found = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)\n```", text, re.DOTALL)
    assert found is not None, f"no ```python block after {MARKER} in {DOC.name}"
    return found.group(1) + "\n"


def test_the_example_block_is_found_whole() -> None:
    program = example_program(DOC.read_text(encoding="utf-8"))
    assert program.startswith('"""tip.py')
    assert program.rstrip().endswith("main()")
    compile(program, "tip.py", "exec")


def _run(program: Path, verb: str, env: dict[str, str]) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, str(program), verb],
        env=env,
        cwd=program.parent,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"tip.py {verb} failed:\n{done.stderr[-3000:]}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_the_documented_program_publishes_a_stix_indicator_and_receives_it(
    world: World, tmp_path: Path
) -> None:
    program = tmp_path / "tip.py"
    program.write_text(example_program(DOC.read_text(encoding="utf-8")), encoding="utf-8")

    published = _run(program, "publish", world.env("cert-eu"))
    assert len(published) == 1
    message_id = published[0]["message_id"]
    assert "enisa" in published[0]["recipients"]  # type: ignore[operator]

    received = {line["message_id"]: line for line in _run(program, "receive", world.env("enisa"))}
    assert message_id in received
    got = received[message_id]
    assert got["sender"] == "cert-eu"
    assert got["tlp"] == "GREEN"
    assert str(got["stix_id"]).startswith("indicator--")
