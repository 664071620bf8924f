"""bench.latency's clock arithmetic: a line is durable at the first fsync that covers it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.latency import Offered, Spread, _durable_times, _spreads


def _line(seq: int) -> bytes:
    return (json.dumps({"record": {"value": f"lat-{seq}.example.net"}}) + "\n").encode()


def test_each_line_takes_the_first_fsync_that_covers_it(tmp_path: Path) -> None:
    sink, times = tmp_path / "enisa.jsonl", tmp_path / "times"
    lines = [_line(-1), _line(0), _line(1)]
    sink.write_bytes(b"".join(lines))
    first, both = len(lines[0]), sum(map(len, lines))
    times.write_text(
        f"1.0 {first} {sink.resolve()}\n"
        f"1.5 {both} {tmp_path / 'other'}\n"  # another file's fsync covers nothing here
        f"2.0 {both} {sink.resolve()}\n"
    )
    assert _durable_times(sink, times) == {-1: 1.0, 0: 2.0, 1: 2.0}


def test_a_line_no_fsync_covers_is_an_error(tmp_path: Path) -> None:
    sink, times = tmp_path / "enisa.jsonl", tmp_path / "times"
    sink.write_bytes(_line(0) + _line(1))
    times.write_text(f"1.0 {len(_line(0))} {sink.resolve()}\n")
    with pytest.raises(RuntimeError, match="no fsync covers"):
        _durable_times(sink, times)


def test_latency_counts_from_the_call_and_from_when_due_after_the_warm_up() -> None:
    offered = Offered(due=[0.0, 1.0, 2.0], called=[0.0, 1.5, 2.0], calls=2, seconds=3.0)
    arrived = {0: 9.0, 1: 1.6, 2: 2.2}  # message 0 is in the warm-up: not counted
    from_call, from_due = _spreads(offered, arrived, warm_up=0.5)
    assert from_call.count == from_due.count == 2
    assert from_call.max == pytest.approx(200.0)
    assert from_due.max == pytest.approx(600.0)


def test_a_message_that_never_arrived_is_an_error() -> None:
    offered = Offered(due=[0.0, 1.0], called=[0.0, 1.0], calls=2, seconds=2.0)
    with pytest.raises(RuntimeError, match="never arrived"):
        _spreads(offered, {0: 0.1}, warm_up=0.0)


def test_percentiles_are_of_the_sorted_figures() -> None:
    spread = Spread.of([i / 1000 for i in range(100, 0, -1)])  # 1..100 ms, reversed
    assert (spread.p50, spread.p99, spread.max) == pytest.approx((51.0, 100.0, 100.0))
