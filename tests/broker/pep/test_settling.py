"""The subscriber settles one batch (receipts, audit, ledger, offsets) while it fetches and
opens the next, and no further: held at a chosen place (the first batch's audit write waits
on a gate), the next batch reaches the sink, but neither its ledger entries nor any offset
are committed before the batch before has settled; a failed or cancelled settling stops the
run with nothing of the next batch committed. On the real broker; no timing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditLog
from broker.errors import KafkaUnavailable
from broker.kafka.clients import consumer, start_client
from broker.kafka.scan import partitions
from broker.pep import Delivery, Retracted, Subscriber
from broker.pep.ledger import DeliveryLedger
from tests.broker.pep.conftest import World
from tests.broker.pep.kafka_io import private_audit, publish_red
from tests.broker.pep.test_sink_outage import _committed

pytestmark = pytest.mark.kafka


def _in_ledger(path: Path) -> set[str]:
    """The message ids the ledger file holds committed (read on a connection of its own)."""
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT message_id FROM delivered")}
    finally:
        db.close()


class FlushNotingSink:
    """Keeps deliveries in memory; at each flush notes which ids it made durable, and which
    ids flushed before it the ledger did not hold yet (batches flushed, not settled)."""

    def __init__(self, ledger: Path) -> None:
        self._ledger = ledger
        self.received: list[str] = []
        self.flushed: list[list[str]] = []  # per flush with deliveries, its ids
        self.unsettled_at_flush: list[set[str]] = []
        self._durable = 0

    async def deliver(self, delivery: Delivery) -> None:
        self.received.append(delivery.message_id)

    async def retract(self, retraction: Retracted) -> None: ...

    async def flush(self) -> None:
        new = self.received[self._durable :]
        if new:
            before = {m for batch in self.flushed for m in batch}
            self.unsettled_at_flush.append(before - _in_ledger(self._ledger))
            self.flushed.append(new)
            self._durable = len(self.received)

    async def close(self) -> None: ...


class GatedAudit:
    """The audit log's `append_many`, its first call held until `release`; at each later
    call, what the ledger holds committed then."""

    def __init__(self, audit: AuditLog, ledger: Path) -> None:
        self._append = audit.append_many
        self._ledger = ledger
        self.entered = asyncio.Event()
        self.released = asyncio.Event()
        self.failure: BaseException | None = None
        self.ledger_at_call: list[set[str]] = []
        audit.append_many = self._gated  # type: ignore[method-assign]

    async def _gated(self, records: Sequence[Any]) -> Any:
        self.ledger_at_call.append(_in_ledger(self._ledger))
        if len(self.ledger_at_call) == 1:
            self.entered.set()
            await self.released.wait()
            if self.failure is not None:
                raise self.failure
        return await self._append(records)


async def _until(check: Callable[[], bool], running: asyncio.Task[Any]) -> None:
    """Wait for `check()` (the subscriber's own progress), failing if the run ends first."""
    async with asyncio.timeout(120):
        while not check():
            assert not running.done(), running.result()
            await asyncio.sleep(0.02)


async def _subscriber_at_the_end(
    world: World, tmp_path: Path
) -> tuple[Subscriber, FlushNotingSink, GatedAudit, Path]:
    """enisa's subscriber (batches of 5) with a new ledger settled at the present end of its
    topics, so that every batch it reads is of records published by the test."""
    ctx = world.ctx("enisa")
    path = tmp_path / "ledger.sqlite"
    ledger = DeliveryLedger(path)
    audit = await private_audit(world, ctx, "receive", tmp_path / "audit")
    sink = FlushNotingSink(path)
    sub = Subscriber(
        "enisa",
        ctx,
        sink,
        group_id=world.group("enisa", "settling"),
        audit=audit,
        ledger=ledger,
        receipts=False,
        log_registry=False,
        max_batch=5,
    )
    reader = consumer(world.admin)
    await start_client(reader, world.admin)
    try:
        ends = await reader.end_offsets(await partitions(reader, list(sub.topics)))
    finally:
        await reader.stop()
    ledger.commit({(tp.topic, tp.partition): end for tp, end in ends.items()})
    return sub, sink, GatedAudit(audit, path), path


async def test_the_next_batch_is_opened_while_one_settles_and_committed_only_after_it(
    world: World, tmp_path: Path
) -> None:
    sub, sink, gate, path = await _subscriber_at_the_end(world, tmp_path)
    ours = await publish_red(world, 12, "203.0.113")
    group = sub._group
    async with sub:
        running = asyncio.create_task(sub.run(until_idle=True))
        await _until(gate.entered.is_set, running)  # the first batch's audit write, held
        first = list(sink.flushed[0])
        # Meanwhile the next batch is fetched, opened, delivered and made durable...
        await _until(lambda: len(sink.flushed) >= 2, running)
        # ...but nothing of either is committed while the first one settles.
        assert _in_ledger(path).isdisjoint(ours)
        assert await _committed(world, group) == {}
        gate.released.set()
        stats = await asyncio.wait_for(running, timeout=120)
    assert stats.delivered == len(ours)
    assert sorted(sink.received) == sorted(ours), "lost or delivered twice"
    # The first batch's ledger commit wrote its deliveries and none of the next batch's.
    assert gate.ledger_at_call[1] & set(ours) == set(first)
    # At most one batch settles at a time: at every flush, only the batch flushed just
    # before may be missing from the ledger.
    for unsettled, previous in zip(sink.unsettled_at_flush[1:], sink.flushed, strict=False):
        assert unsettled <= set(previous)
    assert set(ours) <= _in_ledger(path)
    assert sub._settling is None
    assert await _committed(world, group) != {}


async def test_a_failed_settling_stops_the_run_with_its_error_and_commits_no_later_batch(
    world: World, tmp_path: Path
) -> None:
    sub, sink, gate, path = await _subscriber_at_the_end(world, tmp_path)
    ours = await publish_red(world, 12, "203.0.113")
    gate.failure = KafkaUnavailable("injected: the audit log's brokers are gone")
    group = sub._group
    async with sub:
        running = asyncio.create_task(sub.run(until_idle=True))
        await _until(gate.entered.is_set, running)
        await _until(lambda: len(sink.flushed) >= 2, running)
        gate.released.set()
        with pytest.raises(KafkaUnavailable, match="injected"):
            await running
    assert sub._settling is None
    assert len(gate.ledger_at_call) == 1, "a batch after the failed one was audited"
    assert _in_ledger(path).isdisjoint(ours)
    assert await _committed(world, group) == {}


async def test_a_cancelled_run_lets_the_batch_settling_finish_and_leaves_no_task(
    world: World, tmp_path: Path
) -> None:
    sub, sink, gate, path = await _subscriber_at_the_end(world, tmp_path)
    ours = await publish_red(world, 12, "203.0.113")
    async with sub:
        running = asyncio.create_task(sub.run())
        await _until(gate.entered.is_set, running)
        first = set(sink.flushed[0])
        running.cancel()
        gate.released.set()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert sub._settling is None
    # The batch durable in the sink was settled, not cut short; nothing after it.
    assert _in_ledger(path) & set(ours) == first
