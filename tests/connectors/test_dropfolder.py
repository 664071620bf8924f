"""The drop folder: handled files to done/, refused ones to failed/ with why, the rest left."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from broker.errors import ConfigError, InputFormatError
from connectors.dropfolder import DropFolder, watch


async def handler(path: Path) -> dict[str, Any]:
    if path.suffix == ".bad":
        raise InputFormatError(f"{path.name}: not readable")
    if path.suffix == ".boom":
        raise RuntimeError("broker unreachable")
    return {"size": path.stat().st_size}


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def test_once_sorts_every_file_into_done_or_failed(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "b.bad").write_text("x")
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "c.json.part").write_text("x")
    done = await watch(DropFolder(tmp_path), handler, once=True)
    assert sorted((p.name, p.ok) for p in done) == [("a.json", True), ("b.bad", False)]
    assert json.loads((tmp_path / "done" / "a.json.summary.json").read_text()) == {"size": 2}
    assert (tmp_path / "failed" / "b.bad.reason.txt").read_text() == "b.bad: not readable\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [".hidden", "c.json.part"]


async def test_the_same_name_dropped_twice_keeps_both(tmp_path: Path) -> None:
    folder = DropFolder(tmp_path)
    for text in ("one", "two"):
        (tmp_path / "x.csv").write_text(text)
        await watch(folder, handler, once=True)
    assert sorted(p.read_text() for p in (tmp_path / "done").glob("x*.csv")) == ["one", "two"]


async def test_an_unexpected_error_leaves_the_file_for_next_time(tmp_path: Path) -> None:
    (tmp_path / "x.boom").write_text("x")
    with pytest.raises(RuntimeError):
        await watch(DropFolder(tmp_path), handler, once=True)
    assert (tmp_path / "x.boom").exists()


def test_watching_takes_only_files_that_settled(tmp_path: Path) -> None:
    fresh, old = tmp_path / "fresh.json", tmp_path / "old.json"
    fresh.write_text("{}")
    old.write_text("{}")
    age(old, 10)
    folder = DropFolder(tmp_path, settle=5)
    assert folder.pending(settled_only=True) == [old]
    assert folder.pending(settled_only=False) == [old, fresh]


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        DropFolder(tmp_path / "nope")
