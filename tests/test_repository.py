"""The repository stands on its own: no path of any machine, nothing read from beside it.

A fresh clone in an empty directory must run `make demo` and `make test`; a
committed absolute path (this checkout's, a home directory, a sandbox's) or a
reach outside the repository other than the documented JCU_FIXTURES fallback
would break that on the next machine.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.samples import REPO

#: Absolute paths that only exist on some machine (a container's own /home/jcu is fine:
#: the Dockerfile makes it). Spelled in pieces so this file does not match itself.
MACHINE_PATHS = re.compile(
    "|".join(
        [
            "/" + "work/",
            "/" + "root/",
            "/" + "Users/",
            "/" + r"home/(?!jcu/)[\w.-]+/",
            r"[A-Za-z]:\\" + r"Users\\",
            "/" + r"tmp/(?:standalone|pytest-of|jcu-)",
        ]
    )
)
#: Reaching beside the checkout for the public samples: only where JCU_FIXTURES is explained.
BESIDE = re.compile(r"\.\./shared|parent / \"shared\"|parents\[\d\] / \"shared\"")


def committed_files() -> list[Path]:
    """The files git tracks (what a clone gets); else every file outside build state."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"],  # noqa: S607 - git from PATH
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "demo-out", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
        return [
            p for p in REPO.rglob("*") if p.is_file() and not skip & set(p.relative_to(REPO).parts)
        ]
    return [REPO / name for name in out.decode().split("\0") if name]


def texts() -> list[tuple[str, str]]:
    found = []
    for path in committed_files():
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        try:
            found.append((path.relative_to(REPO).as_posix(), path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue  # binary (fonts, images)
    return found


def test_the_scan_sees_the_repository() -> None:
    names = {name for name, _ in texts()}
    assert {"README.md", "broker/cli/demo.py", "tests/samples.py", ".ci/run"} <= names


def test_no_committed_file_names_a_machine_path() -> None:
    # ... and wherever this checkout happens to be (its folder, the one above, the home)
    here = {str(REPO), str(REPO.parent), str(Path.home())} - {"/"}
    this_machine = re.compile("|".join(re.escape(h) + r"(?![\w.-])" for h in sorted(here)))
    bad = [
        f"{name}:{n}: {line.strip()[:120]}"
        for name, text in texts()
        for n, line in enumerate(text.splitlines(), 1)
        if MACHINE_PATHS.search(line) or this_machine.search(line)
    ]
    assert not bad, "\n".join(bad)


def test_only_the_documented_setting_reaches_beside_the_checkout() -> None:
    bad = [
        name
        for name, text in texts()
        if BESIDE.search(text) and "JCU_FIXTURES" not in text and name != Path(__file__).name
    ]
    assert not bad, bad


@pytest.mark.parametrize(
    "line",
    [
        "fixtures = Path('/" + "work/shared/fixtures')",
        "HOME=/" + "home/alice/jcu",
        "see /" + "root/.cache/x",
        "open('/" + "tmp/pytest-of-root/x')",
    ],
)
def test_the_pattern_catches_machine_paths(line: str) -> None:
    assert MACHINE_PATHS.search(line)


def test_the_pattern_lets_container_paths_through() -> None:
    assert not MACHINE_PATHS.search("ENV JCU_HOME=/" + "home/jcu/state")
