"""A bundle of 10,000 mixed STIX objects through publishing and through each sink.

Run: .venv/bin/python -m bench.stix [--objects 10000] [--publish-only]

The bundle mixes what a threat report carries: indicators (some with a
granular marking stricter than the object), malware, attack patterns,
identities, relationships, sightings, observed data with their observables,
custom `x-` objects and a report every hundred objects or so, naming the
hundred objects before it; four fifths GREEN, a fifth AMBER. It is parsed
(`connectors.soc.parse_stix`), then published as soc-fr to three named
recipients (`publish_parsed`: every object decided, the graph checked per
recipient, sealed, audited, produced), then received by enisa once per sink,
each with a consumer group of its own: JSON lines (the baseline: every sink
does at least what it does), STIX files, the TAXII store, MISP files and the
MISP feed (which turn the bundle into one MISP event with MISP's own
converter). Rates are objects per second, each timed from the first record to
the last one made durable.

Kafka: KAFKA_BOOTSTRAP if set, else a local broker started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench._kafka import federation_homes, kafka_for_bench
from bench._results import record
from broker import config, logs
from broker.envelope import Labels
from broker.pep import Publisher, Subscriber
from broker.pep.context import PepContext
from connectors.isac.factory import make_sink
from connectors.soc import Item, parse_stix
from connectors.soc.publishing import publish_parsed

RECIPIENTS = ("enisa", "cert-eu", "isac-energy")
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
SINKS = ("jsonl", "stix", "taxii", "misp", "misp-feed")
_T = "2026-03-01T09:00:00.000Z"


def _id(kind: str) -> str:
    return f"{kind}--{uuid.uuid4()}"


def _sdo(kind: str, rng: random.Random, **extra: Any) -> dict[str, Any]:
    marking = GREEN if rng.random() < 0.8 else AMBER
    return {
        "type": kind,
        "spec_version": "2.1",
        "id": _id(kind),
        "created": _T,
        "modified": _T,
        "object_marking_refs": [marking],
        **extra,
    }


def make_bundle(n: int, seed: int = 7) -> dict[str, Any]:
    """`n` objects of a dozen kinds, referring to each other the way reports do."""
    rng = random.Random(seed)
    objects: list[dict[str, Any]] = []
    identity = _sdo("identity", rng, name="ACME SOC", identity_class="organization")
    identity["object_marking_refs"] = [GREEN]
    objects.append(identity)
    malware = [
        _sdo("malware", rng, name=f"family {i}", is_family=True, malware_types=["ransomware"])
        for i in range(max(1, n // 50))
    ]
    patterns = [
        _sdo("attack-pattern", rng, name=f"T{1000 + i}",
             external_references=[{"source_name": "mitre-attack", "external_id": f"T{1000 + i}"}])
        for i in range(max(1, n // 100))
    ]  # fmt: skip
    objects += malware + patterns
    report_members: list[str] = [o["id"] for o in objects]
    while len(objects) < n:
        roll = rng.random()
        if roll < 0.35:
            ind = _sdo(
                "indicator",
                rng,
                name=f"C2 {len(objects)}",
                pattern=f"[ipv4-addr:value = '198.51.{len(objects) % 250}.{len(objects) % 200}']",
                pattern_type="stix",
                valid_from="2026-03-01T00:00:00Z",
                indicator_types=["malicious-activity"],
                created_by_ref=identity["id"],
                description="beacon seen at a victim",
            )
            if rng.random() < 0.2:
                ind["granular_markings"] = [{"marking_ref": STRICT, "selectors": ["description"]}]
            rel = _sdo(
                "relationship",
                rng,
                relationship_type="indicates",
                source_ref=ind["id"],
                target_ref=rng.choice(malware)["id"],
            )
            objects += [ind, rel]
            report_members += [ind["id"], rel["id"]]
        elif roll < 0.55:
            ip = {"type": "ipv4-addr", "spec_version": "2.1", "id": _id("ipv4-addr"),
                  "value": f"203.0.{len(objects) % 250}.{len(objects) % 199}"}  # fmt: skip
            od = _sdo("observed-data", rng, first_observed=_T, last_observed=_T,
                      number_observed=1, object_refs=[ip["id"]])  # fmt: skip
            sighting = _sdo("sighting", rng, sighting_of_ref=rng.choice(malware)["id"],
                            observed_data_refs=[od["id"]],
                            where_sighted_refs=[identity["id"]])  # fmt: skip
            objects += [ip, od, sighting]
        elif roll < 0.75:
            use = _sdo("relationship", rng, relationship_type="uses",
                       source_ref=rng.choice(malware)["id"],
                       target_ref=rng.choice(patterns)["id"])  # fmt: skip
            objects.append(use)
        elif roll < 0.99:
            objects.append(_sdo("x-acme-casenote", rng, x_text=f"case {len(objects)}"))
        else:
            members = report_members[-100:] or [identity["id"]]
            objects.append(_sdo("report", rng, name=f"report {len(objects)}", published=_T,
                                report_types=["threat-report"], object_refs=members))  # fmt: skip
    return {"type": "bundle", "id": _id("bundle"), "objects": objects[:n]}


def labels_for(item: Item) -> Labels:
    return Labels.of(item.tlp, categories=sorted(item.categories | {"malicious-code"}))


async def _receive(ctx: PepContext, fmt: str, out: Path, count: int) -> float:
    sink = make_sink(fmt, str(out / fmt), "enisa", ctx.settings)
    sub = Subscriber("enisa", ctx, sink, group_id=f"enisa.bench-{fmt}-{uuid.uuid4().hex[:6]}",
                     receipts=False)  # fmt: skip
    await sub.start()
    try:
        t0 = time.perf_counter()
        stats = await sub.run(until_idle=True)
    finally:
        await sub.stop()  # the MISP sinks write their last events on close
    seconds = time.perf_counter() - t0
    if stats.delivered < count:
        raise RuntimeError(f"{fmt}: {stats.delivered} of {count} delivered ({stats.to_json()})")
    return seconds


async def main(n: int, sinks: tuple[str, ...] = SINKS) -> None:
    logs.configure("console", "ERROR")
    bundle = make_bundle(n)
    data = json.dumps(bundle)
    with tempfile.TemporaryDirectory(prefix="jcu-bench-stix-") as tmp:
        async with kafka_for_bench() as kafka:
            # soc-fr's node publishes, enisa's receives.
            envs = await federation_homes(kafka, Path(tmp) / "federation", "soc-fr", "enisa")
            sender = PepContext.load(config.load(envs["soc-fr"]), envs["soc-fr"])
            receiver = PepContext.load(config.load(envs["enisa"]), envs["enisa"])
            counts: dict[str, int] = {}
            for obj in bundle["objects"]:
                counts[obj["type"]] = counts.get(obj["type"], 0) + 1
            print(f"kafka {kafka.bootstrap}; {n} objects ({len(data) / 1e6:.1f} MB): "
                  + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))  # fmt: skip

            t0 = time.perf_counter()
            parsed = parse_stix(data, default_tlp="GREEN", max_bytes=len(data) + 1)
            parse_s = time.perf_counter() - t0
            async with Publisher("soc-fr", sender) as pub:
                t0, c0 = time.perf_counter(), time.process_time()
                report = await publish_parsed(
                    pub, parsed, source="bench", labels_for=labels_for, recipients=RECIPIENTS
                )
                publish_s, publish_cpu = time.perf_counter() - t0, time.process_time() - c0
                # the same file again (a re-run after a crash): every object already sent
                t0, c0 = time.perf_counter(), time.process_time()
                again = await publish_parsed(
                    pub, parsed, source="bench", labels_for=labels_for, recipients=RECIPIENTS
                )
                again_s, again_cpu = time.perf_counter() - t0, time.process_time() - c0
                assert not again.published, "a re-run sent objects again"
            to_enisa = sum(1 for o in report.published if "enisa" in o.received_by)
            redacted = sum(1 for o in report.published if o.redacted)
            print(f"published {len(report.published)}, withheld from everyone "
                  f"{len(report.withheld)}, skipped {len(report.skipped)}; "
                  f"{to_enisa} reach enisa; {redacted} with parts removed for someone")  # fmt: skip
            rates = {}
            for fmt in sinks:
                rates[fmt] = to_enisa / await _receive(receiver, fmt, Path(tmp), to_enisa)

    print(f"{'parse (connectors.soc)':<34} {n / parse_s:10,.0f} objects/s  ({parse_s:6.2f} s)")
    # The publisher's CPU per object (this process, Kafka's broker apart): less swayed by
    # the machine's other load than the rates, and the parse rate is this run's yardstick.
    print(f"{'publish (decide, graph, seal, audit)':<34} {n / publish_s:10,.0f} objects/s  "
          f"({publish_s:6.2f} s; CPU {publish_cpu / n * 1e6:4.0f} µs an object; "
          f"x{(n / publish_s) / (n / parse_s):5.2f} of the parse rate)")  # fmt: skip
    print(f"{'re-publish (all already sent)':<34} {n / again_s:10,.0f} objects/s  "
          f"({again_s:6.2f} s; CPU {again_cpu / n * 1e6:4.0f} µs an object; "
          f"x{publish_s / again_s:5.2f} of the first publish)")  # fmt: skip
    if not rates:
        return  # --publish-only: nothing received, nothing recorded for the summary
    base = rates["jsonl"]
    figures = {f"sink_{fmt}_per_s": rate for fmt, rate in rates.items()}
    record("stix", {"publish_objects_per_s": n / publish_s, **figures}, objects=n)
    for fmt in sinks:
        print(f"{'receive into ' + fmt:<34} {rates[fmt]:10,.0f} objects/s  "
              f"(x{rates[fmt] / base:5.2f} of the JSON lines sink)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument(
        "--publish-only",
        action="store_true",
        help="parse and publish (twice), receive nothing: a quicker run for publishing alone",
    )
    args = parser.parse_args()
    asyncio.run(main(args.objects, () if args.publish_only else SINKS))
