"""The broker's clock on a record: when it was appended (LogAppendTime).

Data topics stamp each record with the broker's append time (`jcu kafka topics`
sets `message.timestamp.type=LogAppendTime`): the one time a sender cannot choose.
Receivers judge backdating and compromised-key revocations against it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from broker.errors import MalformedRecord

#: aiokafka's timestamp_type of a record the broker stamped (message.timestamp.type=LogAppendTime).
LOG_APPEND_TIME = 1


def appended_at(record: Any) -> datetime:
    """When the broker appended `record`; data topics must have it stamped by the broker.

    The append time is the broker's clock, not the sender's: it is what bounds
    backdating and what a compromised-key revocation is judged against.
    """
    if record.timestamp_type != LOG_APPEND_TIME or record.timestamp is None:
        raise MalformedRecord(
            f"{record.topic} does not stamp broker append times "
            "(message.timestamp.type=LogAppendTime); the platform admin runs `jcu kafka topics`"
        )
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)
