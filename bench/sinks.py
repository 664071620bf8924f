"""Each subscriber sink alone, fed consumer batches the way the subscriber feeds them.

Run: .venv/bin/python -m bench.sinks [--objects 10000] [--batch 500]

The deliveries are what a subscriber hands over after a bundle of mixed STIX
objects (bench.stix's bundle: indicators, relationships, sightings, observed
data, custom objects, reports) went through the pipeline: parsed, Avro-encoded
and decoded again, as `broker.pep.sink.Delivery` objects; the SIENA mailbox gets
case messages of the same count. Each sink takes `deliver` for every record of
a batch, then `flush` (everything durable), batch after batch, then `close`;
the first batch warms up (imports, files, indexes) and the rest is the steady
rate, in deliveries per second, printed next to the goal (2,000/s) and as a
ratio of the JSON-lines sink measured in the same run, and the CPU time per
steady delivery (the process's, worker threads included: on a shared machine it
moves less than the rates do). No Kafka: what the
subscriber does around the sink is bench.pipeline's and bench.stix's business.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._results import record
from broker import logs
from broker.envelope import Labels
from broker.pep.sink import Delivery, JsonlSink, Sink
from broker.schemas import SchemaStore
from connectors.soc import parse_stix

GOAL = 2_000.0
SINKS = ("jsonl", "stix", "misp", "misp-feed", "taxii", "siena")
TOPIC = "jcu.civilian.indicators"
REPO = Path(__file__).resolve().parents[1]


def stix_deliveries(store: SchemaStore, n: int) -> list[Delivery]:
    """`n` objects of bench.stix's bundle as the subscriber hands them to a sink."""
    from bench.stix import make_bundle

    bundle = make_bundle(n)
    data = json.dumps(bundle)
    parsed = parse_stix(data, default_tlp="GREEN", max_bytes=len(data) + 1)
    now = datetime.now(UTC)
    out = []
    for offset, item in enumerate(parsed.items):
        short, record = store.decode(store.encode(item.payload_type, item.record))
        out.append(
            Delivery(
                participant="enisa",
                message_id=str(uuid.uuid4()),
                sender="soc-fr",
                payload_type=short.rsplit(".", 1)[-1],
                record=record,
                labels=Labels.of(item.tlp, categories=sorted(item.categories)),
                topic=TOPIC,
                partition=0,
                offset=offset,
                created=now,
                received=now,
            )
        )
    return out


def case_deliveries(store: SchemaStore, n: int) -> list[Delivery]:
    """`n` SIENA case messages from europol-ec3 to enisa, each with a small attachment."""
    from connectors.siena._format import FORMAT_ID, parse_case_message

    now = datetime.now(UTC)
    out = []
    for i in range(n):
        case_id = str(uuid.uuid4())
        doc = {
            "format": FORMAT_ID,
            "id": case_id,
            "case_reference": f"EC3-2026-{i:05d}",
            "created": "2026-11-27T21:15:00.123Z",
            "sender": "europol-ec3",
            "recipients": ["enisa"],
            "subject": f"Ransomware affiliate infrastructure {i}",
            "body": f"The panel at 192.0.2.{i % 250} serves the affiliates.",
            "persons": [],
            "handling_codes": ["H0"],
            "handling_restrictions": None,
            "evaluation": {"source_reliability": "B", "information_accuracy": 2},
            "tlp": "AMBER",
            "attachments": [],
        }
        case = parse_case_message(json.dumps(doc).encode(), what=f"case {i}")
        short, record = store.decode(store.encode("CaseMessage", case.record))
        out.append(
            Delivery(
                participant="enisa",
                message_id=case_id,
                sender="europol-ec3",
                payload_type=short.rsplit(".", 1)[-1],
                record=record,
                labels=Labels.of("AMBER", handling_codes=case.handling_codes),
                topic="jcu.civilian.assistance",
                partition=0,
                offset=i,
                created=now,
                received=now,
            )
        )
    return out


def make(fmt: str, out: Path) -> Sink:
    """The sink `jcu subscribe --format fmt` (or `jcu siena deliver`) would build."""
    from connectors.isac.subscriber import FormatSink, RoutedSink, stix_objects_of

    if fmt == "jsonl":
        return JsonlSink(out / "enisa.jsonl")
    if fmt == "stix":
        return FormatSink("stix", out)
    if fmt in ("misp", "misp-feed"):
        return FormatSink("misp" if fmt == "misp" else "misp-feed", out)
    if fmt == "taxii":
        from connectors.isac._stix import STIX_PAYLOADS
        from connectors.taxii import TaxiiSink, TaxiiStore

        store = TaxiiStore(out / "enisa.sqlite3", "enisa")
        store.open_sync()
        return RoutedSink(
            TaxiiSink(store, stix_objects_of), FormatSink("jsonl", out / "other"), STIX_PAYLOADS
        )
    if fmt == "siena":
        from connectors.siena.mailbox import MailboxSink

        return MailboxSink(out)
    raise ValueError(fmt)


async def run_sink(
    sink: Sink, deliveries: list[Delivery], batch: int
) -> tuple[float, float, float]:
    """(steady deliveries/s after the first batch, whole-run deliveries/s with close, CPU µs
    per steady delivery): the CPU figure is the process's, worker threads included, and moves
    less with the machine's load than the rates do."""
    t_start = time.perf_counter()
    t_steady = t_start
    cpu_steady = time.process_time()
    for start in range(0, len(deliveries), batch):
        for delivery in deliveries[start : start + batch]:
            await sink.deliver(delivery)
        await sink.flush()
        if start == 0:
            t_steady = time.perf_counter()
            cpu_steady = time.process_time()
    await sink.close()
    t_end = time.perf_counter()
    cpu = time.process_time() - cpu_steady
    steady_n = max(0, len(deliveries) - batch)
    steady = steady_n / (t_end - t_steady) if steady_n else float("nan")
    cpu_us = cpu / steady_n * 1e6 if steady_n else float("nan")
    return steady, len(deliveries) / (t_end - t_start), cpu_us


async def main(n: int, batch: int, only: tuple[str, ...]) -> None:
    logs.configure("console", "ERROR")
    store = SchemaStore.load(REPO / "schemas")
    loaders: dict[str, Callable[[SchemaStore, int], list[Delivery]]] = {
        "stix": stix_deliveries,
        "cases": case_deliveries,
    }
    data: dict[str, list[Delivery]] = {}
    rates: dict[str, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="jcu-bench-sinks-") as tmp:
        for fmt in only:
            kind = "cases" if fmt == "siena" else "stix"
            if kind not in data:
                data[kind] = loaders[kind](store, n)
            rates[fmt] = await run_sink(make(fmt, Path(tmp) / fmt), data[kind], batch)
    kinds: dict[str, Any] = {}
    for d in data.get("stix", ()):
        kinds[d.payload_type] = kinds.get(d.payload_type, 0) + 1
    print(f"{len(data.get('stix', ()))} deliveries of bench.stix's bundle ("
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
          + f"), {len(data.get('cases', ()))} case messages; batches of {batch}")  # fmt: skip
    base = rates.get("jsonl", (float("nan"),) * 3)[0]
    header = ("sink", "steady/s", "goal", "x goal", "x jsonl", "whole run/s", "CPU µs/delivery")
    print("{:<10} {:>10} {:>7} {:>7} {:>8} {:>12} {:>16}".format(*header))
    for fmt in only:
        steady, whole, cpu_us = rates[fmt]
        print(f"{fmt:<10} {steady:10,.0f} {GOAL:7,.0f} {steady / GOAL:7.2f} "
              f"{steady / base:8.2f} {whole:12,.0f} {cpu_us:16,.0f}")  # fmt: skip
    figures = {f"{fmt}_per_s": rates[fmt][0] for fmt in only}
    figures.update({f"{fmt}_cpu_us": rates[fmt][2] for fmt in only})
    record("sinks", figures, objects=n, batch=batch)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="deliveries per consumer batch")
    parser.add_argument("--sink", action="append", choices=SINKS, help="only these (repeatable)")
    args = parser.parse_args()
    asyncio.run(main(args.objects, args.batch, tuple(args.sink or SINKS)))
