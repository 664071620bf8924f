"""bench.summary reads what the benches recorded: each figure against its goal, or "not run"."""

from __future__ import annotations

import operator
from pathlib import Path

import pytest

from bench import summary
from bench._results import RESULTS_ENV, load, record

FIGURES = (
    summary.Figure("latency p99", "latency", "p99_ms", " ms", 100),
    summary.Figure("ratio", "pipeline", "full_over_raw", "", 0.5, operator.ge),
    summary.Figure("no goal", "pipeline", "raw_per_s", "/s"),
)


@pytest.fixture(autouse=True)
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    return tmp_path


def test_a_bench_that_did_not_run_shows_not_run() -> None:
    assert [r[1] for r in summary.rows(FIGURES)] == ["not run"] * 3


def test_figures_are_judged_against_their_goals() -> None:
    record("latency", {"p99_ms": 140.0})
    record("pipeline", {"full_over_raw": 0.52, "raw_per_s": 25_000.0}, messages=3000)
    rows = summary.rows(FIGURES)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("140 ms", "< 100 ms", "MISSED"),
        ("0.52", ">= 0.5", "met"),
        ("25,000/s", "", ""),
    ]
    assert "messages 3000" in rows[1][4]


def test_a_figure_missing_from_a_run_shows_not_run() -> None:
    record("pipeline", {"raw_per_s": 25_000.0})
    assert summary.rows(FIGURES)[1][1] == "not run"


def test_a_new_run_replaces_the_last(results: Path) -> None:
    record("latency", {"p99_ms": 140.0, "p50_ms": 20.0})
    record("latency", {"p99_ms": 90.0})
    assert load("latency") is not None
    assert load("latency")["figures"] == {"p99_ms": 90.0}  # type: ignore[index]
    assert sorted(p.name for p in results.iterdir()) == ["latency.json"]


def test_an_unreadable_file_counts_as_not_run(results: Path) -> None:
    (results / "latency.json").write_text("{torn")
    assert summary.rows(FIGURES)[0][1] == "not run"


def test_every_must_show_row_has_a_goal() -> None:
    goals = {f.name: f.goal for f in summary.FIGURES}
    assert goals["end-to-end latency at 1,000 msg/s, p99"] == 100
    assert goals["subscriber RSS at steady state"] == 200
    assert goals["full path / raw aiokafka (1 KiB, 5 recipients)"] == 0.50
