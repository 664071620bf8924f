"""`jcu stats`: records per topic, consumer lag per subscriber, dead letters by reason,
and policy violations by sender (records refused on receipt as `unauthorised`).

Read from Kafka itself, so it answers for every enforcement point at once;
live per-process counters and latencies are on each service's
`--metrics-port` (Prometheus).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import click

from broker import config
from broker.cli._output import console, emit_json, table
from broker.kafka.clients import admin_client, consumer, start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import partitions, scan
from broker.kafka.topics import DLQ


async def collect(kafka: KafkaConnection) -> dict[str, Any]:
    """Read by the platform's operator principal (or the admin): an organisation sees only
    its own topics, groups and no dead letters."""
    admin = admin_client(kafka)
    await start_client(admin, kafka)
    reader = consumer(kafka)
    try:
        await start_client(reader, kafka)
    except BaseException:
        await admin.close()
        raise
    try:
        topics = sorted(t for t in await reader.topics() if t.startswith("jcu."))
        tps = await partitions(reader, topics)
        ends = await reader.end_offsets(tps) if tps else {}
        begins = await reader.beginning_offsets(tps) if tps else {}
        per_topic: Counter[str] = Counter()
        for tp in tps:
            per_topic[tp.topic] += ends[tp] - begins[tp]
        # Groups are named <participant>.<channel>: every group with offsets on a jcu topic.
        groups = sorted(g[0] for g in await admin.list_consumer_groups())
        lag: dict[str, int] = {}
        for g in groups:
            committed = await admin.list_consumer_group_offsets(g)
            ours = {tp: m for tp, m in committed.items() if tp.topic.startswith("jcu.")}
            if ours:
                lag[g] = sum(
                    max(0, ends.get(tp, meta.offset) - meta.offset)
                    for tp, meta in ours.items()
                    if meta.offset >= 0
                )
        reasons: Counter[str] = Counter()
        violations: Counter[tuple[str, str]] = Counter()
        async for r in scan(kafka, [DLQ]):
            hdr = dict(r.headers or ())
            reason = bytes(hdr.get("jcu.reason", b"unknown")).decode()
            reasons[reason] += 1
            sender = hdr.get("jcu.sender")
            if reason == "unauthorised" and sender:
                receiver = bytes(hdr.get("jcu.participant", b"?")).decode()
                violations[(bytes(sender).decode(), receiver)] += 1
        return {
            "topics": {t: per_topic[t] for t in topics},
            "consumer_lag": lag,
            "dead_letters": dict(reasons),
            "policy_violations": [
                {"sender": s, "refused_by": r, "records": n}
                for (s, r), n in sorted(violations.items())
            ],
        }
    finally:
        await reader.stop()
        await admin.close()


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(as_json: bool) -> None:
    """Counts and lag across the whole broker: topics, subscribers, dead letters. Run it as
    the platform's operator (JCU_KAFKA_CONFIG: its client file): an organisation's principal
    sees only its own topics and groups, and no dead letters."""
    data = asyncio.run(collect(config.load().kafka))
    if as_json:
        emit_json(data)
        return
    out = console()
    out.print(
        table(
            "records per topic",
            ["topic", "records"],
            [[t, n] for t, n in data["topics"].items() if n],
        )
    )
    out.print(table("consumer lag", ["group", "lag"], list(data["consumer_lag"].items())))
    out.print(table("dead letters", ["reason", "records"], list(data["dead_letters"].items())))
    out.print(
        table(
            "policy violations: records a sender encrypted for a receiver the policy refuses",
            ["sender", "refused by", "records"],
            [[v["sender"], v["refused_by"], v["records"]] for v in data["policy_violations"]],
        )
    )
