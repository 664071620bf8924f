"""An audit log's restart connects its producer while it checks the topic (no Kafka: both
stand in), and still fails as it did with them in turn."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit import AuditLog
from broker.errors import AuditError, KafkaForbidden


def _log(tmp_path: Path) -> Any:
    log: Any = AuditLog("soc-fr/publish", ed25519.Ed25519PrivateKey.generate(), None, tmp_path)  # type: ignore[arg-type]
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
