"""A thread's story: every message linked to a request by its thread, with its decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.audit._codec import decode_leaf, encode_leaf
from broker.audit.keys import AuditKeys
from broker.audit.query import query, story
from broker.audit.record import AuditRecord, LoggedRecord
from broker.errors import AuditError, NotEntitled
from broker.schemas import default_store

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
#: An auditor's view: one master opens every enforcement point's leaves here.
KEYS = AuditKeys(bytes(range(32)))


def _logged(ep: str, index: int, record: AuditRecord) -> LoggedRecord:
    store = default_store()
    data = encode_leaf(store, ep, index, b"", record, KEYS.require(ep))
    return decode_leaf(store, data, keys=KEYS).decisions()[0]


def _records() -> list[LoggedRecord]:
    request, offer, bad, other = "req-1", "offer-1", "accept-x", "unrelated"
    return [
        _logged(
            "soc-fr/assist",
            0,
            AuditRecord(
                action="publish",
                organisation="cert-eu",
                message_id=request,
                decision="allow",
                time=T0,
                thread=request,
            ),
        ),
        _logged(
            "soc-fr/assist",
            1,
            AuditRecord(
                action="publish",
                organisation="isac-energy",
                message_id=request,
                decision="deny",
                time=T0,
                thread=request,
            ),
        ),
        _logged(
            "cert-eu/assist",
            0,
            AuditRecord(
                action="receive",
                organisation="cert-eu",
                message_id=request,
                decision="allow",
                time=T0 + timedelta(seconds=5),
                thread=request,
            ),
        ),
        _logged(
            "cert-eu/assist",
            1,
            AuditRecord(
                action="publish",
                organisation="soc-fr",
                message_id=offer,
                decision="allow",
                time=T0 + timedelta(minutes=1),
                thread=request,
            ),
        ),
        _logged(
            "europol-ec3/assist",
            0,
            AuditRecord.from_rejection(
                NotEntitled("only soc-fr may accept"),
                organisation="europol-ec3",
                message_id=bad,
                time=T0 + timedelta(minutes=2),
                thread=request,
            ),
        ),
        _logged(
            "enisa/publish",
            0,
            AuditRecord(
                action="publish",
                organisation="cert-eu",
                message_id=other,
                decision="allow",
                time=T0,
            ),
        ),
    ]


def test_story_gathers_every_message_of_the_thread_in_time_order() -> None:
    messages = story(_records(), "req-1")
    assert [m.message_id for m in messages] == ["req-1", "offer-1", "accept-x"]
    request, offer, refused = messages
    assert request.sender == "soc-fr" and offer.sender == "cert-eu"
    assert set(request.decisions) == {"cert-eu", "isac-energy"}
    assert len(request.decisions["cert-eu"]) == 2  # published to it, then received by it
    assert refused.sender is None  # the refusal happened at the receiver only
    assert "rejected (not-entitled)" in refused.decisions["europol-ec3"][0]


def test_story_includes_what_was_sent_of_a_thread_message() -> None:
    """Send outcomes name the message; the story finds them through its thread's messages."""
    sent = _logged(
        "cert-eu/publish",
        9,
        AuditRecord(
            action="send",
            organisation="soc-fr",
            message_id="offer-1",
            decision="sent",
            time=T0 + timedelta(minutes=1, seconds=1),
        ),
    )
    offer = story([*_records(), sent], "req-1")[1]
    assert [r.record.action for r in offer.records] == ["publish", "send"]


def test_query_by_thread_and_an_unknown_thread() -> None:
    assert {r.record.message_id for r in query(_records(), thread="req-1")} == {
        "req-1",
        "offer-1",
        "accept-x",
    }
    with pytest.raises(AuditError, match="no decisions about thread"):
        story(_records(), "req-2")
