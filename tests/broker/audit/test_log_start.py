"""An audit log's restart connects its producer while it checks the topic (no Kafka: both
stand in), and still fails as it did with them in turn; a principal behind the wall is
noted once and not checked again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit import AuditLog
from broker.errors import AuditError, KafkaForbidden
from broker.kafka.connection import KafkaConnection


def _as(username: str) -> KafkaConnection:
    return KafkaConnection(
        "127.0.0.1:1",
        "SASL_SSL",
        "SCRAM-SHA-512",
        username,
        "never used: nothing connects",
        source="test",
    )


def _log(tmp_path: Path, kafka: KafkaConnection | None = None) -> Any:
    kafka = kafka or KafkaConnection.plaintext("127.0.0.1:1")
    log: Any = AuditLog("soc-fr/publish", ed25519.Ed25519PrivateKey.generate(), kafka, tmp_path)
    return log


def _stand_ins(log: Any, *, producer_fails: bool = False, check_fails: bool = False) -> None:
    started, checking = asyncio.Event(), asyncio.Event()

    async def start_producer() -> None:
        started.set()
        # Connected only once the check is under way: in turn, this never ends.
        await asyncio.wait_for(checking.wait(), timeout=10)
        if producer_fails:
            raise AuditError("cannot reach Kafka")

    async def check_topic(state: object) -> str:
        checking.set()
        await asyncio.wait_for(started.wait(), timeout=10)
        if check_fails:
            raise KafkaForbidden("this Kafka principal may not read jcu.audit.decisions")
        return "found"

    log._start_producer, log._check_topic = start_producer, check_topic


async def test_the_producer_starts_while_the_topic_is_checked(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _stand_ins(log)
    assert await log._check_topic_as_producer_starts(object()) == "found"


async def test_behind_the_wall_the_check_says_so_once_the_producer_is_up(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _stand_ins(log, check_fails=True)
    with pytest.raises(KafkaForbidden, match=r"may not read jcu\.audit\.decisions"):
        await log._check_topic_as_producer_starts(object())


async def test_a_producer_that_cannot_start_is_the_error_whatever_the_check(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _stand_ins(log, producer_fails=True, check_fails=True)
    with pytest.raises(AuditError, match="cannot reach Kafka"):
        await log._check_topic_as_producer_starts(object())


async def test_a_principal_behind_the_wall_is_noted_and_not_checked_again(tmp_path: Path) -> None:
    log = _log(tmp_path, _as("soc-fr"))
    _stand_ins(log, check_fails=True)
    with pytest.raises(KafkaForbidden):
        await log._check_topic_as_producer_starts(object())
    note = tmp_path / "soc-fr%2Fpublish.audit.wall"  # beside the point's state
    assert log._wall_note == note
    assert note.read_text() == "User:soc-fr"
    assert note.stat().st_mode & 0o077 == 0

    again = _log(tmp_path, _as("soc-fr"))
    started: list[bool] = []

    async def start_producer() -> None:
        started.append(True)

    async def check_topic(state: object) -> str:
        raise AssertionError("a principal noted behind the wall is not checked again")

    again._start_producer, again._check_topic = start_producer, check_topic
    with pytest.raises(KafkaForbidden, match=r"User:soc-fr may not read jcu\.audit\.decisions"):
        await again._check_topic_as_producer_starts(object())
    assert started == [True]


async def test_another_principal_is_checked_whatever_the_note_says(tmp_path: Path) -> None:
    log = _log(tmp_path, _as("soc-fr"))
    _stand_ins(log, check_fails=True)
    with pytest.raises(KafkaForbidden):
        await log._check_topic_as_producer_starts(object())
    auditor = _log(tmp_path, _as("auditor"))
    _stand_ins(auditor)
    assert await auditor._check_topic_as_producer_starts(object()) == "found"


async def test_a_topic_that_answers_leaves_no_note(tmp_path: Path) -> None:
    log = _log(tmp_path, _as("auditor"))
    _stand_ins(log)
    assert await log._check_topic_as_producer_starts(object()) == "found"
    assert not log._wall_note.exists()
