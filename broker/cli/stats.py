"""`jcu stats`: records per topic, consumer lag per group (records and seconds), rates,
dead letters by reason, and policy violations by sender (records refused on receipt as
`unauthorised`).

Read from Kafka itself, so it answers for every enforcement point at once; with
`--metrics-port` it stays up and exports the same as Prometheus gauges, refreshed
every `--every` seconds. Per-process counters and latencies are on each
service's own `--metrics-port`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import click

from broker import config
from broker.cli._options import connection_options
from broker.cli._output import console, emit_json, table
from broker.clock import utc_now
from broker.kafka.clients import consumer, start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.lag import group_lag, offsets_now
from broker.kafka.scan import partitions, scan
from broker.kafka.topics import DLQ


async def collect(kafka: KafkaConnection, *, window: float = 0.0) -> dict[str, Any]:
    """Read by the platform's operator principal (or the admin): an organisation sees only
    its own topics, groups and no dead letters. With `window` (seconds), also the rates:
    records appended per topic and consumed per group per second over that window."""
    rates: dict[str, Any] = {}
    if window > 0:
        appended0, consumed0 = await offsets_now(kafka)
        await asyncio.sleep(window)
        appended1, consumed1 = await offsets_now(kafka)
        rates = {
            "window_seconds": window,
            "topics": {
                t: round((n - appended0.get(t, n)) / window, 2) for t, n in appended1.items()
            },
            "groups": {
                g: round((n - consumed0.get(g, n)) / window, 2) for g, n in consumed1.items()
            },
        }
    data = await _counts(kafka)
    now = utc_now()
    records: Counter[str] = Counter()
    seconds: dict[str, float] = {}
    for lag in await group_lag(kafka):
        records[lag.group] += lag.records
        seconds[lag.group] = max(seconds.get(lag.group, 0.0), round(lag.seconds(now), 1))
    data["consumer_lag"] = dict(records)
    data["consumer_lag_seconds"] = seconds
    if rates:
        data["rates"] = rates
    return data


async def _counts(kafka: KafkaConnection) -> dict[str, Any]:
    reader = consumer(kafka)
    await start_client(reader, kafka)
    try:
        topics = sorted(t for t in await reader.topics() if t.startswith("jcu."))
        tps = await partitions(reader, topics)
        ends = await reader.end_offsets(tps) if tps else {}
        begins = await reader.beginning_offsets(tps) if tps else {}
        per_topic: Counter[str] = Counter()
        for tp in tps:
            per_topic[tp.topic] += ends[tp] - begins[tp]
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
            "dead_letters": dict(reasons),
            "policy_violations": [
                {"sender": s, "refused_by": r, "records": n}
                for (s, r), n in sorted(violations.items())
            ],
        }
    finally:
        await reader.stop()


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--window",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Measure rates (records appended per topic, consumed per group) over this long; "
    "0: no rates.",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Stay up and export the same as Prometheus gauges on this port (until Ctrl-C).",
)
@click.option(
    "--metrics-bind",
    default=None,
    metavar="ADDR",
    help="Address the metrics listen on (default JCU_METRICS_ADDR, else 127.0.0.1).",
)
@click.option(
    "--every",
    type=click.FloatRange(min=1),
    default=15.0,
    show_default=True,
    help="With --metrics-port: seconds between two refreshes.",
)
@connection_options
def stats(
    as_json: bool,
    window: float,
    metrics_port: int | None,
    metrics_bind: str | None,
    every: float,
) -> None:
    """Counts, lag and rates across the whole broker: topics, every consumer group (lag in
    records, partitions never committed on counted from their start, and in seconds), dead
    letters. Run it as the platform's operator (JCU_KAFKA_CONFIG: its client file): an
    organisation's principal sees only its own topics and groups, and no dead letters."""
    kafka = config.load().kafka
    if metrics_port is not None:
        _export(kafka, metrics_port, metrics_bind, every, window)
        return
    data = asyncio.run(collect(kafka, window=window))
    if as_json:
        emit_json(data)
        return
    rates = data.get("rates", {})
    out = console()
    out.print(
        table(
            "records per topic",
            ["topic", "records", "appended/s"],
            [[t, n, rates.get("topics", {}).get(t, "")] for t, n in data["topics"].items() if n],
        )
    )
    out.print(
        table(
            "consumer lag",
            ["group", "records behind", "seconds behind", "consumed/s"],
            [
                [g, n, data["consumer_lag_seconds"].get(g, 0.0), rates.get("groups", {}).get(g, "")]
                for g, n in data["consumer_lag"].items()
            ],
        )
    )
    out.print(table("dead letters", ["reason", "records"], list(data["dead_letters"].items())))
    out.print(
        table(
            "policy violations: records a sender encrypted for a receiver the policy refuses",
            ["sender", "refused by", "records"],
            [[v["sender"], v["refused_by"], v["records"]] for v in data["policy_violations"]],
        )
    )


def _export(
    kafka: KafkaConnection, port: int, bind: str | None, every: float, window: float
) -> None:
    """Serve the gauges and refresh them every `every` seconds until SIGINT/SIGTERM; a
    refresh that fails (Kafka away) is logged and the last values stay."""
    from broker.audit import leaf_encoder
    from broker.cli._runtime import OnStop, run_until_signalled
    from broker.logs import get_logger
    from broker.metrics import PlatformMetrics
    from broker.schemas import default_store

    log = get_logger(__name__)
    gauges = PlatformMetrics()
    gauges.watch_audit_encoder(leaf_encoder(default_store()))
    gauges.serve(port, bind)
    click.echo(f"jcu stats: Prometheus metrics on port {port}, every {every:g} s", err=True)

    async def run(on_stop: OnStop) -> None:
        stop = asyncio.Event()
        on_stop(stop.set)
        while not stop.is_set():
            try:
                data = await collect(kafka, window=min(window, every / 2))
            except Exception as exc:  # Kafka away: keep serving the last values
                log.warning("stats refresh failed", error=f"{type(exc).__name__}: {exc}")
            else:
                _set(gauges, data)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    run_until_signalled(run)


def _set(gauges: Any, data: dict[str, Any]) -> None:
    rates = data.get("rates", {})
    for topic, n in data["topics"].items():
        gauges.topic_records.labels(topic).set(n)
    for topic, rate in rates.get("topics", {}).items():
        gauges.topic_rate.labels(topic).set(rate)
    for group, n in data["consumer_lag"].items():
        gauges.lag_records.labels(group).set(n)
        gauges.lag_seconds.labels(group).set(data["consumer_lag_seconds"].get(group, 0.0))
    for group, rate in rates.get("groups", {}).items():
        gauges.consume_rate.labels(group).set(rate)
    for reason, n in data["dead_letters"].items():
        gauges.dead_letters.labels(reason).set(n)
