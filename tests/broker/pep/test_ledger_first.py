"""The subscriber trusts its own ledger over the consumer group's committed offset."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.structs import TopicPartition
from structlog.testing import capture_logs

from broker.envelope import Labels
from broker.kafka.clients import consumer, start_client
from broker.kafka.scan import partitions
from broker.metrics import Metrics
from broker.pep import JsonlSink, Publisher, Subscriber
from tests.broker.pep.records import indicator
from tests.world import World

pytestmark = pytest.mark.kafka


async def _send_red(world: World) -> str:
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        sent = await pub.publish(
            "Indicator", indicator(), labels=Labels.of("RED"), recipients=["enisa"]
        )
    return sent.message_id


async def _commit_end_offsets(world: World, group: str, topics: tuple[str, ...]) -> int:
    """Commit, for `group`, the end of every partition: what the attack of issue 13 did (the
    ACLs now let only enisa commit enisa's groups; a stolen credential or a slip still can)."""
    kafka = world.kafka("enisa")
    committer = consumer(kafka, group_id=group)
    await start_client(committer, kafka)
    try:
        tps = await partitions(committer, topics)
        ends = await committer.end_offsets(tps)
        committer.assign(tps)
        await committer.commit({tp: end for tp, end in ends.items()})
        return sum(ends.values())
    finally:
        await committer.stop()


async def test_an_offset_committed_past_a_message_does_not_skip_it(
    world: World, tmp_path: Path
) -> None:
    group = world.group("enisa", "ledger-first")
    sink = tmp_path / "enisa.jsonl"
    first = await _send_red(world)
    sub = Subscriber("enisa", world.ctx("enisa"), JsonlSink(sink), group_id=group, receipts=False)
    async with sub:
        await sub.run(until_idle=True)
    assert first in sink.read_text()

    skipped = await _send_red(world)  # arrives after the ledger's position
    assert await _commit_end_offsets(world, group, sub.topics) > 0

    metrics = Metrics()
    again = Subscriber(
        "enisa",
        world.ctx("enisa"),
        JsonlSink(sink),
        group_id=group,
        receipts=False,
        metrics=metrics,
    )
    with capture_logs() as logs:
        async with again:
            stats = await again.run(until_idle=True)
    assert skipped in sink.read_text(), "the committed offset made the subscriber skip it"
    assert stats.delivered >= 1 and sink.read_text().count(first) == 1
    ahead = [e for e in logs if e["event"].startswith("committed offset ahead of the ledger")]
    assert ahead and {e["group"] for e in ahead} == {group}
    counted = sum(
        s.value
        for m in metrics.registry.collect()
        if m.name == "jcu_committed_offset_ahead"
        for s in m.samples
        if s.name.endswith("_total")
    )
    assert counted == len(ahead)


@pytest.mark.parametrize("seek_lost", [False, True], ids=["seek", "seek-lost"])
async def test_a_ledger_ahead_of_the_group_starts_from_the_ledger(
    world: World, tmp_path: Path, seek_lost: bool
) -> None:
    """After a crash between the ledger's commit and the group's, the group is behind: the
    subscriber starts where its ledger settled, and nothing is delivered or refused twice.
    Also when the seek to the ledger's position does not take effect (a fetch begun from the
    committed offset before it): records fetched from before that position are passed by."""
    group = world.group("enisa", f"ledger-ahead-{seek_lost}".lower())
    sink = tmp_path / "enisa.jsonl"
    sent = await _send_red(world)
    sub = Subscriber("enisa", world.ctx("enisa"), JsonlSink(sink), group_id=group, receipts=False)
    async with sub:
        await sub.run(until_idle=True)
        settled = [
            sub._ledger.settled(tp.topic, tp.partition)
            for tp in (TopicPartition(t, p) for t in sub.topics for p in (0, 1))
        ]
    assert any(settled)
    # Rewind the group to the beginning, as if its last commits were lost.
    kafka = world.kafka("enisa")
    rewinder = consumer(kafka, group_id=group)
    await start_client(rewinder, kafka)
    try:
        tps = await partitions(rewinder, sub.topics)
        rewinder.assign(tps)
        await rewinder.commit(dict.fromkeys(tps, 0))
    finally:
        await rewinder.stop()
    again = Subscriber("enisa", world.ctx("enisa"), JsonlSink(sink), group_id=group, receipts=False)
    if seek_lost:

        async def no_seek(assigned: object) -> None:
            return None

        again._start_from_ledger = no_seek  # type: ignore[method-assign]
    async with again:
        stats = await again.run(until_idle=True)
    assert sink.read_text().count(sent) == 1
    assert stats.delivered == 0 and stats.duplicates == 0 and not stats.rejected
    if seek_lost:
        assert stats.settled_before > 0
