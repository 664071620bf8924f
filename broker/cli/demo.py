"""`jcu demo`: the scenario end to end on a local Kafka, from nothing.

This is the foundation's smoke scenario: start Kafka, create the community
topics of the contract, produce and consume one record on each, print a table,
stop Kafka. The full sharing scenario replaces its middle part.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path

import click
from rich.progress import Progress

from broker import config
from broker.cli._output import console, emit_json, table
from broker.kafka.local import LocalKafka, free_port
from broker.kafka.topics import TopicSpec, community_topic, ensure_topics
from broker.registry import COMMUNITIES, STREAMS


async def _roundtrip(
    bootstrap: str, topics: list[str], progress: Progress
) -> list[dict[str, object]]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    task = progress.add_task("round trip per topic", total=len(topics))
    rows: list[dict[str, object]] = []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for topic in topics:
            marker = uuid.uuid4().hex
            t0 = time.perf_counter()
            meta = await producer.send_and_wait(topic, marker.encode(), key=b"demo")
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
            await consumer.start()
            try:
                tp = TopicPartition(topic, meta.partition)
                consumer.assign([tp])
                consumer.seek(tp, meta.offset)
                got = await consumer.getone()
            finally:
                await consumer.stop()
            rows.append(
                {
                    "topic": topic,
                    "partition": meta.partition,
                    "offset": meta.offset,
                    "ok": got.value == marker.encode(),
                    "ms": round((time.perf_counter() - t0) * 1000, 1),
                }
            )
            progress.advance(task)
    finally:
        await producer.stop()
    return rows


async def _run(data_dir: Path, port: int, keep: bool) -> list[dict[str, object]]:
    settings = config.load()
    local = LocalKafka(
        data_dir, port=port, controller_port=free_port(), cache_dir=settings.kafka_cache
    )
    out = console()
    with Progress(console=out, transient=True) as progress:
        step = progress.add_task(f"starting kafka on 127.0.0.1:{port}", total=None)
        await local.start()
        progress.update(step, description="creating topics")
        topics = [community_topic(c, s) for c in COMMUNITIES for s in STREAMS]
        await ensure_topics(local.bootstrap, [TopicSpec(t) for t in topics])
        progress.remove_task(step)
        try:
            return await _roundtrip(local.bootstrap, topics, progress)
        finally:
            if not keep:
                local.stop()


@click.command()
@click.option("--port", type=int, default=None, help="Kafka port (default: a free one).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Kafka data directory (default: a fresh one under $JCU_HOME/demo).",
)
@click.option("--keep-kafka", is_flag=True, help="Leave Kafka running at the end.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def demo(port: int | None, data_dir: Path | None, keep_kafka: bool, as_json: bool) -> None:
    """Run the scenario end to end on a local Kafka, from nothing."""
    settings = config.load()
    data = data_dir or settings.home / "demo" / f"kafka-{uuid.uuid4().hex[:8]}"
    try:
        rows = asyncio.run(_run(data, port or free_port(), keep_kafka))
    finally:
        if data_dir is None and not keep_kafka:
            shutil.rmtree(data, ignore_errors=True)
    if as_json:
        emit_json(rows)
    else:
        console().print(
            table(
                "community topics: produce + consume",
                ["topic", "partition", "offset", "round trip", "ms"],
                [
                    [
                        r["topic"],
                        r["partition"],
                        r["offset"],
                        "ok" if r["ok"] else "FAILED",
                        r["ms"],
                    ]
                    for r in rows
                ],
            )
        )
    if not all(r["ok"] for r in rows):
        raise click.ClickException("a record did not come back intact")
