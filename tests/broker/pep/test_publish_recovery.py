"""A publisher killed between recording its decisions and sending (or between sending and
recording what it sent): after it starts again, the log says what became of each message."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from broker.kafka.scan import scan
from broker.kafka.topics import community_topic
from broker.pep import Publisher
from broker.pep.sent import SentLog
from broker.vocabulary import COMMUNITIES
from tests.broker.pep.kafka_io import jcu
from tests.world import World

pytestmark = pytest.mark.kafka
ROWS = 5


def _killed_publish(world: World, tmp_path: Path, fault: str) -> list[str]:
    """`jcu publish --csv` as soc-fr, killed at `fault`; the message ids it had begun."""
    csv = tmp_path / "rows.csv"
    net = uuid.uuid4().int % 250  # values of this run alone: the session's inboxes are shared
    rows = "".join(f"ipv4-addr,233.252.{net}.{i + 10}\n" for i in range(ROWS))
    csv.write_text("type,value\n" + rows)
    proc = subprocess.run(
        [sys.executable, "-m", "broker.cli", "publish", "--as", "soc-fr", "--csv", str(csv),
         "--tlp", "GREEN", "--category", "malicious-code"],
        env={**world.env("soc-fr"), "JCU_FAULT": fault},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    sent = SentLog(world.home("soc-fr") / "sent" / "soc-fr.sqlite", point="soc-fr/publish")
    try:
        pending = [m.message_id for m, _ in sent.pending()]
    finally:
        sent.close()
    assert len(pending) == ROWS
    return pending


async def _on_topics(world: World, ids: list[str]) -> dict[str, list[tuple[str, int, int]]]:
    found: dict[str, list[tuple[str, int, int]]] = {m: [] for m in ids}
    topics = [community_topic(c, "indicators") for c in COMMUNITIES]
    async for r in scan(world.admin, topics):  # every community's topics: the admin
        key = r.key.decode() if r.key else ""
        if key in found:
            found[key].append((r.topic, r.partition, r.offset))
    return found


async def _outcomes(world: World, message_id: str) -> tuple[list[Any], list[Any]]:
    out = await jcu(world, "audit", "query", "--as", "soc-fr", "--message", message_id, "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    return (
        [r for r in rows if r["action"] == "publish"],
        [r for r in rows if r["action"] == "send"],
    )


async def test_a_publish_killed_between_audit_and_send_is_recorded_as_not_sent(
    world: World, tmp_path: Path
) -> None:
    pending = await asyncio.to_thread(_killed_publish, world, tmp_path, "publisher.after-audit")
    assert all(not copies for copies in (await _on_topics(world, pending)).values())
    for mid in pending:  # decided and recorded, and nothing says what became of it yet
        decided, outcome = await _outcomes(world, mid)
        assert any(r["decision"] == "allow" for r in decided) and outcome == []

    async with Publisher("soc-fr", world.ctx("soc-fr")):  # starting again settles them
        pass
    for mid in pending:
        decided, outcome = await _outcomes(world, mid)
        allowed = {r["organisation"] for r in decided if r["decision"] in ("allow", "redact")}
        assert {r["organisation"] for r in outcome} == allowed
        assert {(r["decision"], r["rejection_reason"]) for r in outcome} == {
            ("unsent", "publisher-stopped")
        }
        assert "never sent" in outcome[0]["reasons"][0]
    sent = SentLog(world.home("soc-fr") / "sent" / "soc-fr.sqlite", point="soc-fr/publish")
    try:
        assert sent.pending() == [] and all(sent.get(m) is None for m in pending)
    finally:
        sent.close()


async def test_a_publish_killed_after_send_is_recorded_as_sent_where_it_went(
    world: World, tmp_path: Path
) -> None:
    pending = await asyncio.to_thread(_killed_publish, world, tmp_path, "publisher.after-send")
    where = await _on_topics(world, pending)
    assert all(where[m] for m in pending)
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        for mid in pending:
            _, outcome = await _outcomes(world, mid)
            assert outcome and {r["decision"] for r in outcome} == {"sent"}
            places = {
                (r["details"]["topic"], int(r["details"]["partition"]), int(r["details"]["offset"]))
                for r in outcome
            }
            assert places == set(where[mid])
        retracted = await pub.retract(pending[0])  # found again, so it can still be retracted
        assert retracted.copies
