"""A sink that is down never costs a record: the batch is held, retried, and either taken
once the sink is back or left uncommitted when the subscriber gives up. Dead letters are
for bad records, never for a receiver that is down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker.envelope import Labels
from broker.kafka.clients import admin_client, start_client
from broker.kafka.scan import scan
from broker.kafka.topics import DLQ
from broker.pep import Subscriber
from broker.pep.sink import SinkRetry
from connectors.isac.webhook import Backoff, WebhookSink
from tests.broker.pep.conftest import World
from tests.broker.pep.kafka_io import publish_red, spawn_subscriber
from tests.hooks import HookServer

pytestmark = pytest.mark.kafka
RED = Labels.of("RED")


async def _committed(world: World, group: str) -> dict[str, int]:
    """The group's committed offsets, as `topic[partition]` -> offset."""
    admin = admin_client(world.admin)
    await start_client(admin, world.admin)
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {f"{tp.topic}[{tp.partition}]": m.offset for tp, m in offsets.items() if m.offset >= 0}


async def _dead_lettered(world: World, ids: set[str], participant: str) -> list[str]:
    """Reasons `participant` dead-lettered any of `ids` for."""
    found = []
    async for r in scan(world.auditor, [DLQ]):
        headers = dict(r.headers or ())
        mine = headers.get("jcu.participant") == participant.encode()
        if mine and (r.key or b"").decode() in ids:
            found.append(bytes(headers["jcu.reason"]).decode())
    return found


async def test_a_webhook_down_then_up_gets_every_record_once_and_nothing_is_dead_lettered(
    world: World,
) -> None:
    """The receiver first holds the subscriber's request (nothing committed meanwhile), then
    answers 503 for a while, then comes back: every record reaches it once, none is
    dead-lettered, and the group commits only after."""
    ours = set(await publish_red(world, 12))
    group = world.group("enisa", "webhook-outage")
    with HookServer("hold") as hook:
        sink = WebhookSink(hook.url, backoff=Backoff(attempts=1))
        sub = Subscriber(
            "enisa",
            world.ctx("enisa"),
            sink,
            group_id=group,
            receipts=False,
            sink_retry=SinkRetry(give_up_after=300, base=0.05, cap=0.2, tell_every=1),
        )
        async with sub:
            running = asyncio.create_task(sub.run(until_idle=True))
            await asyncio.to_thread(hook.wait_for, held=1)
            assert await _committed(world, group) == {}, "committed while the sink held"
            hook.set("down")
            await asyncio.to_thread(hook.wait_for, refused=5)
            assert not running.done(), "the subscriber went on while its sink was down"
            assert await _committed(world, group) == {}, "committed while the sink was down"
            hook.set("up")
            stats = await asyncio.wait_for(running, timeout=300)
    assert {m: hook.accepted[m] for m in ours} == dict.fromkeys(ours, 1)
    assert [k for k, n in hook.accepted.items() if n > 1] == [], "a record posted twice"
    assert stats.rejected.get("undeliverable", 0) == 0
    assert await _dead_lettered(world, ours, "enisa") == []
    assert await _committed(world, group) != {}


async def test_a_sink_that_stays_down_stops_the_subscriber_with_one_line_and_no_commit(
    world: World, tmp_path: Path
) -> None:
    """Past --sink-give-up-after the subscriber exits 1 with one line saying what to do, and
    commits nothing; the next run, with the receiver back, delivers every record once."""
    ours = set(await publish_red(world, 5))
    group = world.group("enisa", "webhook-gives-up")
    log = tmp_path / "subscriber.log"
    with HookServer("down") as hook:
        proc = spawn_subscriber(
            world,
            "enisa",
            tmp_path / "unused",
            group,
            "--once",
            "--no-receipts",
            "--webhook",
            hook.url,
            "--sink-give-up-after",
            "2",
            log=log,
        )
        assert await asyncio.to_thread(proc.wait, 120) == 1, log.read_text()
        last = log.read_text().strip().splitlines()[-1]
        assert last.startswith("jcu: error: sink ") and hook.url in last, last
        assert "stopped without committing" in last and "--sink-give-up-after 2" in last, last
        assert "Traceback" not in log.read_text()
        assert hook.refused >= 1 and not hook.accepted
        assert await _committed(world, group) == {}
        assert await _dead_lettered(world, ours, "enisa") == []

        hook.set("up")
        again = spawn_subscriber(
            world,
            "enisa",
            tmp_path / "unused",
            group,
            "--once",
            "--no-receipts",
            "--webhook",
            hook.url,
            log=log,
        )
        assert await asyncio.to_thread(again.wait, 180) == 0, log.read_text()
    assert {m: hook.accepted[m] for m in ours} == dict.fromkeys(ours, 1)


async def test_a_full_disk_under_the_sink_holds_the_batch_and_stops_without_committing(
    world: World, tmp_path: Path
) -> None:
    """No space for the JSON lines (injected at the sink's first write): held, retried,
    then one line and exit 1 past the give-up time; nothing committed, nothing
    dead-lettered; with space again, every record once."""
    ours = set(await publish_red(world, 3))
    group = world.group("enisa", "sink-disk-full")
    out, log = tmp_path / "out", tmp_path / "subscriber.log"
    proc = spawn_subscriber(
        world,
        "enisa",
        out,
        group,
        "--once",
        "--no-receipts",
        "--sink-give-up-after",
        "1",
        log=log,
        env={"JCU_FAULT": "sink.write:ENOSPC"},
    )
    assert await asyncio.to_thread(proc.wait, 120) == 1, log.read_text()
    text = log.read_text()
    assert "sink unavailable: holding the batch" in text
    last = text.strip().splitlines()[-1]
    assert last.startswith(f"jcu: error: sink {out / 'enisa.jsonl'} did not take"), last
    assert "No space left on device" in last and "stopped without committing" in last, last
    assert await _committed(world, group) == {}
    assert await _dead_lettered(world, ours, "enisa") == []

    again = spawn_subscriber(world, "enisa", out, group, "--once", "--no-receipts", log=log)
    assert await asyncio.to_thread(again.wait, 180) == 0, log.read_text()
    lines = (out / "enisa.jsonl").read_text().splitlines()
    got = [m for m in ours for line in lines if f'"message_id": "{m}"' in line]
    assert sorted(got) == sorted(ours)


async def test_a_sink_that_cannot_express_a_record_stops_without_committing(
    world: World,
) -> None:
    """Not an outage: a sink that raises on the record itself. The record passed every
    check, so it is no dead letter: the subscriber stops at once, commits nothing."""
    from broker.errors import SinkGaveUp
    from broker.pep.sink import Delivery, Retracted

    class Picky:
        shown = "picky-sink"

        async def deliver(self, delivery: Delivery) -> None:
            raise ValueError("cannot express this record")

        async def retract(self, retraction: Retracted) -> None: ...

        async def flush(self) -> None: ...

        async def close(self) -> None: ...

    ours = set(await publish_red(world, 1))
    group = world.group("enisa", "picky")
    sub = Subscriber("enisa", world.ctx("enisa"), Picky(), group_id=group, receipts=False)
    with pytest.raises(SinkGaveUp, match=r"sink picky-sink cannot take message .* stopped without"):
        async with sub:
            await sub.run(until_idle=True)
    assert "undeliverable" not in sub.stats.rejected  # (the backlog's bad records are refused)
    assert await _committed(world, group) == {}
    assert await _dead_lettered(world, ours, "enisa") == []
