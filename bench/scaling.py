"""One against two subscriber processes of one participant: what a second process adds.

Run: .venv/bin/python -m bench.scaling [--messages 30000 --partitions 3]

soc-fr publishes `--messages` indicators (~1 KiB payload, 5 recipients, as
bench.pipeline) to the civilian indicators topic, whose partitions are the
contract's (`--partitions`, 3 by default: broker.kafka.topics.contract_topics);
the publisher's and the Kafka broker's CPU per message are taken meanwhile.
Then enisa's node receives them into JSON lines, each leg in new consumer groups
(new channels, from the beginning): one `jcu subscribe` process (the baseline);
two processes in two channels (each delivers every message: independent
enforcement points, as two sinks of one organisation run); and two processes in
one group. The last is refused today: a channel is one enforcement point with
one audit log and one ledger, and the node lets one process write them (the
bench prints the refusal, and measures the leg if a later design allows it).
Deliveries per second and CPU per message of each process (from /proc) and of
the broker are taken over each leg's steady window: from when every process of
the leg has delivered its first line (started, joined, assigned) to the last
delivery. The machine's cores bound what two processes add;
docs/performance.md argues from the CPU per message to more cores.

Kafka: KAFKA_BOOTSTRAP if set (the broker's CPU is then not counted), else a
local broker started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench._kafka import BenchKafka, federation_homes, kafka_for_bench
from bench._load import CHUNK, RECIPIENTS, count_lines, cpu_seconds, indicator
from bench._results import record
from broker import config, logs
from broker.envelope import Labels
from broker.kafka.topics import contract_topics, ensure_topics
from broker.pep import Publication, Publisher
from broker.pep.context import PepContext


@dataclass(frozen=True, slots=True)
class Published:
    rate: float
    publisher_us: float  # CPU per message
    kafka_us: float


@dataclass(frozen=True, slots=True)
class Leg:
    """A leg's steady window: deliveries/s; per process its deliveries and CPU µs each."""

    rate: float
    processes: tuple[tuple[int, float], ...]
    kafka_us: float


class Refused(Exception):
    """A subscriber of the leg would not run (its last log line says why)."""


async def _publish(ctx: PepContext, n: int, kafka_pid: int | None) -> Published:
    labels = Labels.of("RED", categories=["malicious-code"])
    records = [indicator(i, "scale") for i in range(n)]
    async with Publisher("soc-fr", ctx) as pub:
        kafka0, cpu0, t0 = cpu_seconds(kafka_pid), time.process_time(), time.perf_counter()
        for start in range(0, n, CHUNK):
            await pub.publish_many(
                [Publication("Indicator", r, labels, RECIPIENTS) for r in records[start:][:CHUNK]]
            )
        took = time.perf_counter() - t0
        cpu, kafka = time.process_time() - cpu0, cpu_seconds(kafka_pid) - kafka0
    return Published(n / took, cpu / n * 1e6, kafka / n * 1e6)


async def _receive(
    env: dict[str, str], root: Path, groups: list[str], n: int, kafka_pid: int | None
) -> Leg:
    """A `jcu subscribe` of enisa per group in `groups` (new groups: each channel reads
    the topic from the start), until each distinct group has all n delivered."""
    outs = [root / f"{group}-{i}" for i, group in enumerate(groups)]
    procs = []
    for out, group in zip(outs, groups, strict=True):
        out.mkdir(parents=True)
        argv = [sys.executable, "-m", "broker.cli", "subscribe", "--out", str(out)]
        argv += ["--group", group, "--no-receipts"]
        log = (out / "subscriber.log").open("wb")
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env))
    sinks = [out / "enisa.jsonl" for out in outs]
    expected = n * len(set(groups))
    try:

        def check() -> list[int]:
            for proc, out in zip(procs, outs, strict=True):
                if proc.poll() is not None:
                    text = (out / "subscriber.log").read_text().strip().splitlines()
                    raise Refused(text[-1] if text else f"exit {proc.returncode}")
            return [count_lines(s) for s in sinks]

        while min(lines := check()) == 0:  # every process started, joined, was assigned
            if sum(lines) >= expected:
                raise RuntimeError("one process delivered everything: raise --messages")
            await asyncio.sleep(0.02)
        lines0 = lines
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        kafka0, t0 = cpu_seconds(kafka_pid), time.perf_counter()
        while sum(lines := check()) < expected:
            await asyncio.sleep(0.02)
        took = time.perf_counter() - t0
        cpu = [cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True)]
        kafka = cpu_seconds(kafka_pid) - kafka0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    if sum(lines) != expected:
        raise RuntimeError(f"{sum(lines)} lines for {expected} deliveries: one delivered twice")
    done = [after - before for after, before in zip(lines, lines0, strict=True)]
    window = sum(done)
    return Leg(
        window / took,
        tuple((d, c / d * 1e6 if d else 0.0) for d, c in zip(done, cpu, strict=True)),
        kafka / window * 1e6,
    )


def _row(name: str, leg: Leg) -> str:
    each = "; ".join(f"{us:4.0f} µs ({d:,})" for d, us in leg.processes)
    return (
        f"  {name:<30} {leg.rate:8,.0f} deliveries/s   subscriber {each}; "
        f"Kafka broker {leg.kafka_us:.0f} µs"
    )


async def main(n: int, partitions: int) -> None:
    logs.configure("console", "WARNING")
    with tempfile.TemporaryDirectory(prefix="jcu-bench-scaling-") as tmp:
        async with kafka_for_bench() as kafka:
            await _community_topics(kafka, partitions)
            envs = await federation_homes(kafka, Path(tmp) / "federation", "soc-fr", "enisa")
            ctx = PepContext.load(config.load(envs["soc-fr"]), envs["soc-fr"])
            print(
                f"kafka {kafka.bootstrap}; {n:,} messages (~1 KiB payload, {len(RECIPIENTS)} "
                f"recipients) on {partitions} partitions; {os.cpu_count()} cores",
                flush=True,
            )
            published = await _publish(ctx, n, kafka.pid)
            print(
                f"published at {published.rate:,.0f} msg/s; CPU per message: publisher "
                f"{published.publisher_us:.0f} µs, Kafka broker {published.kafka_us:.0f} µs",
                flush=True,
            )
            channel = f"enisa.scale{uuid.uuid4().hex[:6]}"
            one = await _receive(envs["enisa"], Path(tmp), [f"{channel}a"], n, kafka.pid)
            channels = [f"{channel}b", f"{channel}c"]
            two = await _receive(envs["enisa"], Path(tmp), channels, n, kafka.pid)
            try:
                shared = await _receive(envs["enisa"], Path(tmp), [f"{channel}d"] * 2, n, kafka.pid)
                refused = ""
            except Refused as why:
                refused = str(why)
    print("CPU per message in µs over each leg's steady window (all its processes delivering),")
    print("each process's deliveries in the window in brackets")
    print(_row("one process, one channel", one))
    print(_row("two processes, two channels", two))
    print(
        f"  two / one: x{two.rate / one.rate:.2f} deliveries/s "
        f"(independent channels; the machine's {os.cpu_count()} cores bound it)"
    )
    if refused:
        print(f"  two processes, one group: refused by the node: {refused}")
    else:
        print(_row("two processes, one group", shared))
    record(
        "scaling",
        {
            "one_per_s": one.rate,
            "two_per_s": two.rate,
            "two_over_one": two.rate / one.rate,
            "publish_per_s": published.rate,
            "publisher_cpu_us": published.publisher_us,
            "kafka_publish_cpu_us": published.kafka_us,
            "one_subscriber_cpu_us": one.processes[0][1],
            "two_subscriber_cpu_us": max(us for _, us in two.processes),
            **({} if refused else {"one_group_per_s": shared.rate}),
            "kafka_one_cpu_us": one.kafka_us,
            "kafka_two_cpu_us": two.kafka_us,
        },
        messages=n,
        partitions=partitions,
        cores=os.cpu_count() or 0,
    )


async def _community_topics(kafka: BenchKafka, partitions: int) -> None:
    """The contract's topics with `partitions` for the community ones (made before the
    federation's set-up, which then finds them)."""
    await ensure_topics(kafka.admin, contract_topics(partitions=partitions))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--partitions", type=int, default=3, help="of each community topic")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.partitions))
