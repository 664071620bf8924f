"""Only a record the broker stamped carries an append time a receiver may trust."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from broker.errors import MalformedRecord
from broker.kafka.stamps import LOG_APPEND_TIME, appended_at
from broker.kafka.topics import contract_topics

MS = 1_795_000_000_123


def _record(timestamp_type: int, timestamp: int | None = MS) -> SimpleNamespace:
    return SimpleNamespace(
        topic="jcu.civilian.indicators", timestamp=timestamp, timestamp_type=timestamp_type
    )


def test_a_broker_stamped_record_gives_its_append_time() -> None:
    got = appended_at(_record(LOG_APPEND_TIME))
    assert got == datetime.fromtimestamp(MS / 1000, UTC) and got.tzinfo is UTC


@pytest.mark.parametrize("record", [_record(0), _record(LOG_APPEND_TIME, None)])
def test_a_sender_stamped_record_is_refused_saying_what_to_run(record: SimpleNamespace) -> None:
    with pytest.raises(MalformedRecord, match="jcu kafka topics"):
        appended_at(record)


def test_every_topic_of_sealed_records_is_stamped_by_the_broker() -> None:
    """Data topics and the capability inventory: a receiver judges backdating by them."""
    for spec in contract_topics():
        stamped = spec.configs.get("message.timestamp.type") == "LogAppendTime"
        sealed = spec.name == "jcu.capabilities" or spec.name.rsplit(".", 2)[-2] in {
            "civilian",
            "law_enforcement",
            "diplomatic",
            "defence",
        }
        assert stamped == sealed, spec.name
