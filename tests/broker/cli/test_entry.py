"""`python -m broker.cli` is safe to import: a spawned worker process (a big file's
parse, connectors._processes) imports the parent's main module under another name."""

from __future__ import annotations

import runpy

import pytest


def test_the_module_entry_point_imported_by_a_worker_runs_no_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runpy.run_module("broker.cli.__main__", run_name="__mp_main__")  # as spawn imports it
    assert capsys.readouterr() == ("", "")
