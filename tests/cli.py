"""Running `jcu` in-process for tests, as the console script would (exit code, stdout, stderr)."""

from __future__ import annotations

import pytest

from broker.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
