"""The delivery ledger: dedup by position, replay guard, one lookup per record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.errors import StateError
from broker.pep.ledger import DeliveryLedger, Position

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HERE = Position("jcu.civilian.indicators", 0, 5)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[DeliveryLedger]:
    led = DeliveryLedger(tmp_path / "ledger.sqlite")
    yield led
    led.close()


def _selects(ledger: DeliveryLedger) -> list[str]:
    seen: list[str] = []
    ledger._db.set_trace_callback(lambda sql: seen.append(sql) if "SELECT" in sql else None)
    return seen


def test_seen_right_after_position_reuses_its_lookup(ledger: DeliveryLedger) -> None:
    selects = _selects(ledger)
    assert ledger.position("m-1") is None
    assert ledger.seen("m-1") is False
    assert len(selects) == 1


def test_seen_asks_the_database_for_another_id_or_a_second_time(
    ledger: DeliveryLedger,
) -> None:
    ledger.stage("m-1", "soc-fr", T0 + timedelta(days=7), HERE)
    ledger.commit()
    selects = _selects(ledger)
    assert ledger.position("m-2") is None
    assert ledger.seen("m-1") is True
    assert ledger.seen("m-2") is False
    assert ledger.seen("m-2") is False
    assert len(selects) == 4


def test_a_commit_between_position_and_seen_is_not_missed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    mine, other = DeliveryLedger(path), DeliveryLedger(path)
    try:
        assert mine.position("m-1") is None
        other.stage("m-1", "soc-fr", T0 + timedelta(days=7), HERE)
        other.commit()
        mine.commit()  # the batch boundary: what was looked up before is forgotten
        assert mine.seen("m-1") is True
    finally:
        mine.close()
        other.close()


def test_staged_and_committed_deliveries_are_seen_at_their_position(
    ledger: DeliveryLedger,
) -> None:
    ledger.stage("m-1", "soc-fr", T0 + timedelta(days=7), HERE)
    assert ledger.seen("m-1") and ledger.position("m-1") == HERE
    ledger.commit()
    assert ledger.position("m-1") == HERE
    assert ledger.seen("m-1")
    assert ledger.sender_of("m-1") == "soc-fr"
    assert len(ledger) == 1


def test_prune_forgets_expired_ids_even_just_looked_up(ledger: DeliveryLedger) -> None:
    ledger.stage("m-1", "soc-fr", T0 + timedelta(days=1), HERE)
    ledger.commit()
    assert ledger.position("m-1") == HERE
    assert ledger.prune(T0 + timedelta(days=2)) == 1
    assert ledger.seen("m-1") is False


def test_prefetch_answers_a_batch_in_one_query(ledger: DeliveryLedger) -> None:
    ledger.stage("m-1", "soc-fr", T0 + timedelta(days=7), HERE)
    ledger.commit()
    selects = _selects(ledger)
    ledger.prefetch(["m-1", "m-2", "m-3", "m-2"])
    assert ledger.position("m-1") == HERE
    assert ledger.seen("m-1") is True
    assert ledger.position("m-2") is None
    assert ledger.seen("m-2") is False
    assert ledger.position("m-3") is None
    assert len(selects) == 1
    assert ledger.position("m-4") is None  # not prefetched: its own query
    assert len(selects) == 2


def test_a_delivery_staged_in_the_batch_wins_over_what_was_prefetched(
    ledger: DeliveryLedger,
) -> None:
    ledger.prefetch(["m-1"])
    there = Position("jcu.civilian.indicators", 1, 9)
    ledger.stage("m-1", "soc-fr", T0 + timedelta(days=7), there)
    assert ledger.position("m-1") == there
    assert ledger.seen("m-1") is True


def test_prefetched_answers_end_with_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    mine, other = DeliveryLedger(path), DeliveryLedger(path)
    try:
        mine.prefetch(["m-1"])
        assert mine.position("m-1") is None
        other.stage("m-1", "soc-fr", T0 + timedelta(days=7), HERE)
        other.commit()
        mine.commit()  # the batch boundary
        assert mine.position("m-1") == HERE
        mine.prefetch(["m-1"])
        assert mine.prune(T0 + timedelta(days=8)) == 1
        assert mine.position("m-1") is None  # pruning forgets what was prefetched too
    finally:
        mine.close()
        other.close()


def test_a_corrupt_ledger_is_one_clear_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"not a ledger at all\n" * 400)
    with pytest.raises(StateError, match=r"is unreadable .*--rebuild-ledger"):
        DeliveryLedger(path)


def test_a_full_disk_at_commit_is_one_clear_error_and_commits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.sqlite"
    led = DeliveryLedger(path)
    led.stage("m-1", "soc-fr", T0 + timedelta(days=1), HERE)
    monkeypatch.setenv("JCU_FAULT", "ledger.commit@1:ENOSPC")
    with pytest.raises(StateError, match=r"could not be written .*No space left on device"):
        led.commit({(HERE.topic, HERE.partition): HERE.offset + 1})
    led.close()
    monkeypatch.delenv("JCU_FAULT")
    again = DeliveryLedger(path)
    assert again.existed and not again.has_settled() and again.position("m-1") is None
    again.close()


def test_a_new_ledger_says_it_did_not_exist(tmp_path: Path) -> None:
    first = DeliveryLedger(tmp_path / "ledger.sqlite")
    assert not first.existed and not first.has_settled()
    first.commit({(HERE.topic, HERE.partition): 6}, audit_mark=(3, 9), audit_point="p/receive/a")
    first.close()
    second = DeliveryLedger(tmp_path / "ledger.sqlite")
    assert second.existed and second.has_settled()
    assert second.audit_mark() == (3, 9) and second.audit_point() == "p/receive/a"
    second.close()


def test_a_batch_set_aside_is_seen_until_its_commit_which_writes_only_it(
    tmp_path: Path,
) -> None:
    """The subscriber commits batch N while batch N+1 stages: N+1's deliveries must not be
    written with N's settled positions (a crash then would drop them as redeliveries)."""
    path = tmp_path / "ledger.sqlite"
    ledger, other = DeliveryLedger(path), DeliveryLedger(path)
    expires = T0 + timedelta(days=7)
    later = Position(HERE.topic, 0, 6)
    try:
        ledger.stage("m-1", "soc-fr", expires, HERE)
        first = ledger.set_aside()
        ledger.prefetch(["m-1", "m-2"])
        # Still uncommitted, and seen: a copy of m-1 elsewhere is a replay.
        assert ledger.position("m-1") == HERE and ledger.seen("m-1")
        assert ledger.sender_of("m-1") == "soc-fr"
        ledger.stage("m-2", "cert-de", expires, later)
        ledger.commit({(HERE.topic, 0): 6}, staged=first)
        assert other.position("m-1") == HERE
        assert other.position("m-2") is None, "the next batch's delivery went with this one"
        assert ledger.position("m-2") == later and ledger.position("m-1") == HERE
        ledger.commit({(HERE.topic, 0): 7})
        assert other.position("m-2") == later and other.settled(HERE.topic, 0) == 7
    finally:
        ledger.close()
        other.close()


def test_a_batch_set_aside_whose_commit_failed_is_still_seen(
    ledger: DeliveryLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.stage("m-1", "soc-fr", T0 + timedelta(days=7), HERE)
    aside = ledger.set_aside()
    monkeypatch.setenv("JCU_FAULT", "ledger.commit:ENOSPC")
    with pytest.raises(StateError):
        ledger.commit({(HERE.topic, 0): 6}, staged=aside)
    monkeypatch.delenv("JCU_FAULT")
    assert ledger.position("m-1") == HERE
    assert ledger.settled(HERE.topic, 0) is None
