"""What pipeline tests do on the real broker again and again: write raw records, drain a
participant into a JSON-lines sink, run the `jcu` command against the test world."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from broker.pep import JsonlSink, Subscriber, SubscriberStats
from tests.world import World


async def produce(
    world: World, topic: str, value: bytes, key: str | None = None, **producer_options: Any
) -> None:
    """Write one raw record, bypassing the publisher (as a hostile member could)."""
    producer = AIOKafkaProducer(bootstrap_servers=world.bootstrap, **producer_options)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key.encode() if key else None)
    finally:
        await producer.stop()


async def drain(
    world: World, org: str, out: Path, *, receipts: bool = False
) -> tuple[SubscriberStats, list[dict[str, Any]]]:
    """Receive everything on `org`'s topics with a fresh group; what its sink got."""
    path = out / f"{org}.jsonl"
    sub = Subscriber(
        org, world.ctx(org), JsonlSink(path), group_id=world.group(org), receipts=receipts
    )
    async with sub:
        stats = await sub.run(until_idle=True)
    lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    return stats, lines


async def jcu(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """`jcu ARGS` as a subprocess run by the node `--as` names (else enisa's) in the world."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "broker.cli", *args],
        env=world.env_for(args),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def spawn_subscriber(
    world: World, participant: str, out: Path, group: str, *extra: str, log: Path
) -> subprocess.Popen[bytes]:
    """`jcu subscribe` running in the background. Its stderr goes to `log`: a pipe nobody
    reads while it runs could fill up (one warning per refused record) and stall it."""
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "broker.cli",
                "subscribe",
                "--as",
                participant,
                "--out",
                str(out),
                "--group",
                group,
                *extra,
            ],
            env=world.env(participant),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
