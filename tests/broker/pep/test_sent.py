"""The sent index: one file per participant, pending messages and audit marks per point."""

from __future__ import annotations

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
