"""The sent index: one file per participant, pending messages and audit marks per point."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from broker.audit import AuditMark
from broker.envelope import Labels
from broker.pep.sent import SentCopy, SentLog, SentMessage


def _message(mid: str) -> SentMessage:
    copy = SentCopy("civilian", "jcu.civilian.assistance", ("cert-eu",))
    return SentMessage(mid, "soc-fr", "AssistanceOffer", Labels.of("AMBER"), (copy,))


def test_each_point_settles_only_what_it_began_and_reads_its_own_mark(tmp_path: Path) -> None:
    """The desk's publisher (`/assist`) shares the file with `/publish`: a restart of either
    must read its own log from its own mark, and settle only what it began."""
    path = tmp_path / "sent" / "soc-fr.sqlite"
    publish = SentLog(path, point="soc-fr/publish")
    assist = SentLog(path, point="soc-fr/assist")
    publish.begin([_message("m-publish")], 1000)
    assist.begin([_message("m-assist")], 2000)
    assert [m.message_id for m, _ in publish.pending()] == ["m-publish"]
    assert [(m.message_id, ms) for m, ms in assist.pending()] == [("m-assist", 2000)]

    assist.add_many([_message("m-assist")], settled=["m-assist"], mark=AuditMark(7, 70))
    assert assist.pending() == [] and assist.audit_mark() == AuditMark(7, 70)
    assert publish.audit_mark() is None  # the assist log's place says nothing of this log
    assert [m.message_id for m, _ in publish.pending()] == ["m-publish"]

    reopened = SentLog(path, point="soc-fr/publish")
    assert [m.message_id for m, _ in reopened.pending()] == ["m-publish"]
    assert reopened.get("m-assist") is not None  # one index of what was sent, for retraction


def test_messages_older_than_the_retention_are_pruned_and_the_file_is_private(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from broker.pep.sent import SourceRef

    path = tmp_path / "sent" / "soc-fr.sqlite"
    index = SentLog(path, point="soc-fr/publish", retention=timedelta(days=2))
    day = 24 * 3600 * 1000
    now = 100 * day
    old = [
        SentMessage(
            f"old-{i}", "soc-fr", "Indicator", Labels.of("GREEN"),
            (SentCopy("civilian", "jcu.civilian.indicators", ("cert-eu",)),),
            SourceRef(f"indicator--{i}", "v1", "bundle--x"), sent_ms=now - 3 * day,
        )
        for i in range(50)
    ]  # fmt: skip
    fresh = [
        dataclasses.replace(m, message_id=f"new-{m.message_id}", sent_ms=now - day) for m in old
    ]
    index.add_many(old + fresh)
    assert index.count() == 100
    assert index.prune(now) == 50
    assert index.count() == 50 and index.get("old-1") is None and index.get("new-old-1") is not None
    assert index.messages_of(["indicator--1"]) == ["new-old-1"]  # sources pruned with them
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700


def test_the_retention_comes_from_the_environment() -> None:
    from datetime import timedelta

    import pytest

    from broker.errors import ConfigError
    from broker.pep.sent import DEFAULT_RETENTION, retention_from_env

    assert retention_from_env({}) == DEFAULT_RETENTION
    assert retention_from_env({"JCU_SENT_RETENTION_DAYS": "3"}) == timedelta(days=3)
    with pytest.raises(ConfigError, match="not a positive number of days"):
        retention_from_env({"JCU_SENT_RETENTION_DAYS": "-1"})


def test_denials_and_retraction_are_kept() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        index = SentLog(Path(d) / "s.sqlite", point="soc-fr/publish")
        message = dataclasses.replace(_message("m1"), denied=(("europol-ec3", ("rule-1",)),))
        index.add(message)
        got = index.get("m1")
        assert got is not None and got.denied == (("europol-ec3", ("rule-1",)),)
        assert not got.retracted and got.sent_ms > 0
        index.mark_retracted("m1")
        again = index.get("m1")
        assert again is not None and again.retracted


def test_an_index_written_before_bodies_were_compact_reads_the_same(tmp_path: Path) -> None:
    """Bodies are written with orjson now; rows `json.dumps` wrote (spaced) still read."""
    import json
    import sqlite3
    import time

    from broker.pep.sent import SourceRef, _body

    now = int(time.time() * 1000)  # within the retention: not pruned on open

    path = tmp_path / "soc-fr.sqlite"
    SentLog(path, point="soc-fr/publish").close()
    sent = dataclasses.replace(
        _message("m-old"),
        source=SourceRef("indicator--1", "v1", "bundle--1"),
        denied=(("europol-ec3", ("rule-1",)),),
    )
    pending = _message("m-pending")
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO sent (message_id, body, sent_ms) VALUES (?, ?, ?)",
        ("m-old", json.dumps(_body(sent)), now),
    )
    db.execute(
        "INSERT INTO pending (message_id, body, created_ms, point) VALUES (?, ?, ?, ?)",
        ("m-pending", json.dumps(_body(pending)), 5, "soc-fr/publish"),
    )
    db.execute(
        "INSERT INTO produced (message_id, topic, recipients, partition, offset)"
        " VALUES (?, ?, ?, ?, ?)",
        ("m-pending", "jcu.civilian.assistance", json.dumps(["cert-eu"]), 0, 9),
    )
    db.commit()
    db.close()

    index = SentLog(path, point="soc-fr/publish")
    assert index.get("m-old") == dataclasses.replace(sent, sent_ms=now)
    assert index.pending() == [(pending, 5)]
    assert index.produced_of("m-pending") == {
        ("jcu.civilian.assistance", frozenset({"cert-eu"})): (0, 9)
    }
    # ... and what it writes now is read back as it was written
    index.add_many([dataclasses.replace(sent, message_id="m-new", sent_ms=now)])
    assert index.get("m-new") == dataclasses.replace(sent, message_id="m-new", sent_ms=now)


def test_reached_says_who_got_a_copy_of_an_object_until_it_is_retracted(tmp_path: Path) -> None:
    """The graph check's "reached before": any version of the object, any of its copies."""
    from broker.pep.sent import SourceRef

    index = SentLog(tmp_path / "soc-fr.sqlite", point="soc-fr/publish")
    v1 = SentMessage(
        "m-v1", "soc-fr", "StixObject", Labels.of("GREEN"),
        (SentCopy("civilian", "jcu.civilian.indicators", ("cert-eu",)),),
        SourceRef("indicator--1", "v1", "bundle--1"),
    )  # fmt: skip
    v2 = dataclasses.replace(
        v1,
        message_id="m-v2",
        copies=(SentCopy("energy", "jcu.energy.indicators", ("isac-energy", "enisa")),),
        source=SourceRef("indicator--1", "v2", "bundle--2"),
    )
    unsourced = dataclasses.replace(v1, message_id="m-none", source=None)
    index.add_many([v1, v2, unsourced])
    assert index.reached("indicator--1", "cert-eu")  # by v1
    assert index.reached("indicator--1", "enisa")  # by v2's copy to the energy community
    assert not index.reached("indicator--1", "europol-ec3")  # no copy of it went there
    assert not index.reached("indicator--2", "cert-eu")  # another object
    # a re-send that reaches one more organisation (the index then holds both copies)
    more = SentCopy("law-enforcement", "jcu.law-enforcement.indicators", ("europol-ec3",))
    index.add_many([dataclasses.replace(v1, copies=(*v1.copies, more))])
    assert index.reached("indicator--1", "europol-ec3")
    index.mark_retracted("m-v1")
    assert not index.reached("indicator--1", "cert-eu") and not index.reached(
        "indicator--1", "europol-ec3"
    )
    assert index.reached("indicator--1", "enisa")  # v2 still stands


def test_an_index_with_a_table_of_sources_is_migrated_into_its_messages(tmp_path: Path) -> None:
    """Indexes written before the sources moved into their messages' rows stay readable:
    every source, retraction and lookup survives the migration, once."""
    import sqlite3

    from broker.pep.sent import SourceRef, _body, _dumps

    path = tmp_path / "sent" / "soc-fr.sqlite"
    path.parent.mkdir()
    copy = SentCopy("civilian", "jcu.civilian.indicators", ("cert-eu",))
    sourced = SentMessage(
        "m-1", "soc-fr", "Indicator", Labels.of("GREEN"), (copy,),
        SourceRef("indicator--1", "v1", "bundle--a"),
    )  # fmt: skip
    gone = dataclasses.replace(
        sourced, message_id="m-2", source=SourceRef("indicator--2", "v1", "bundle--a")
    )
    db = sqlite3.connect(path)
    db.executescript(
        # the schema as the index was written before this migration
        "CREATE TABLE sent (message_id TEXT PRIMARY KEY, body TEXT NOT NULL,"
        " sent_ms INTEGER NOT NULL DEFAULT 0, retracted INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE sources (message_id TEXT PRIMARY KEY, source_id TEXT NOT NULL,"
        " version TEXT, container TEXT, retracted INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX sources_by_id ON sources (source_id);"
        "CREATE INDEX sources_by_container ON sources (container);"
    )
    now = 10**13  # far from any retention cutoff
    for m, retracted in ((sourced, 0), (gone, 1), (_message("m-3"), 0)):
        db.execute(
            "INSERT INTO sent VALUES (?, ?, ?, ?)",
            (m.message_id, _dumps({k: v for k, v in _body(m).items() if k != "source"}), now,
             retracted),
        )  # fmt: skip
        if m.source is not None:
            db.execute(
                "INSERT INTO sources VALUES (?, ?, ?, ?, ?)",
                (m.message_id, m.source.id, m.source.version, m.source.container, retracted),
            )
    db.commit()
    db.close()

    for _ in range(2):  # migrated once; a second open finds nothing to do
        index = SentLog(path, point="soc-fr/publish")
        assert index.count() == 3
        got = index.get("m-1")
        assert got is not None and got.source == SourceRef("indicator--1", "v1", "bundle--a")
        retracted = index.get("m-2")
        assert retracted is not None and retracted.retracted
        assert index.messages_of(["indicator--1", "indicator--2"]) == ["m-1"]
        assert index.messages_of(container="bundle--a") == ["m-1"]
        assert index.messages_for([SourceRef("indicator--1", "v1", "bundle--a")]) == ["m-1"]
        assert index.reached("indicator--1", "cert-eu")
        assert not index.reached("indicator--2", "cert-eu")  # retracted
        index.close()
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "sources" not in tables


def test_a_message_added_again_without_its_source_keeps_it(tmp_path: Path) -> None:
    from broker.pep.sent import SourceRef

    index = SentLog(tmp_path / "sent.sqlite", point="soc-fr/publish")
    source = SourceRef("indicator--1", "v1", "bundle--a")
    index.add(dataclasses.replace(_message("m-1"), source=source))
    index.add(_message("m-1"))
    got = index.get("m-1")
    assert got is not None and got.source == source
    assert index.messages_of(["indicator--1"]) == ["m-1"]
