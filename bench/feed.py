"""A SOC's indicator feed through `jcu publish --stix`, as an operator runs it: start to exit.

Run: .venv/bin/python -m bench.feed [--objects 20000]

A bundle of `--objects` indicators (one-observation patterns on IP addresses,
GREEN, what a threat feed carries) is published by a fresh `jcu publish --stix
FEED --to enisa` process of soc-fr's node (keys under scrypt, a secured Kafka,
the federation behind its walls), its per-object report printed as an operator
sees it (to /dev/null here). Timed from the process's start to its exit, with
the process's CPU and its peak resident memory (from the kernel, `wait4`):
what a SOC importing a feed waits for, parse, start-up, report and all, where
bench.stix times `publish_parsed` alone. Then the same feed again (every object
already sent: found in the sent index, nothing sent), and a new feed with
`--json` (the report as JSON, object by object). Baseline in the same run:
`parse_stix` of the feed in this process (what the file costs before anything
is published), then with its checks on every core, as `jcu publish` parses.
Goal printed next to it: issue 19's 3,000 objects/s.

Kafka: KAFKA_BOOTSTRAP if set, else a local broker started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench._kafka import federation_homes, kafka_for_bench
from bench._results import record
from broker import logs
from connectors.soc import cores, parse_stix

GOAL = 3_000
_T = "2026-03-01T09:00:00.000Z"
_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


def _feed(path: Path, n: int) -> Path:
    tag = uuid.uuid4().hex[:6]
    objects = [
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--{uuid.uuid4()}",
            "created": _T,
            "modified": _T,
            "name": f"C2 node {tag} {i}",
            "indicator_types": ["malicious-activity"],
            "pattern_type": "stix",
            "pattern": f"[ipv4-addr:value = '10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}']",
            "valid_from": _T,
            "object_marking_refs": [_GREEN],
        }
        for i in range(n)
    ]
    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    cpu_us: float  # per object
    rss_mib: float

    def rate(self, n: int) -> float:
        return n / self.seconds


def _publish(feed: Path, n: int, env: dict[str, str], *extra: str) -> Run:
    """One `jcu publish` of `feed`, start to exit; its CPU and peak RSS from the kernel."""
    jcu = Path(sys.executable).with_name("jcu")
    argv = [str(jcu)] if jcu.exists() else [sys.executable, "-m", "broker.cli"]
    argv += ["publish", "--stix", str(feed), "--to", "enisa"]
    argv += ["--max-size", str(feed.stat().st_size + 1), *extra]
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - t0
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"jcu publish failed: {err.read().decode()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds, cpu / n * 1e6, usage.ru_maxrss / 1024)


def _line(name: str, n: int, run: Run, parse_rate: float, goal: bool = False) -> None:
    target = f"goal >= {GOAL:,}/s {'met' if run.rate(n) >= GOAL else 'NOT met'}" if goal else ""
    print(
        f"{name:<40} {run.rate(n):8,.0f} objects/s  ({run.seconds:6.2f} s, "
        f"x{run.rate(n) / parse_rate:4.2f} of the parse rate)  CPU {run.cpu_us:5.0f} µs an "
        f"object  peak RSS {run.rss_mib:5.0f} MiB  {target}"
    )


async def main(n: int) -> None:
    logs.configure("console", "ERROR")
    with tempfile.TemporaryDirectory(prefix="jcu-bench-feed-") as tmp:
        root = Path(tmp)
        async with kafka_for_bench() as kafka:
            env = (await federation_homes(kafka, root / "federation", "soc-fr"))["soc-fr"]
            feed = _feed(root / "feed.json", n)
            size = feed.stat().st_size
            t0 = time.perf_counter()
            parsed = parse_stix(feed.read_bytes(), default_tlp="GREEN")
            parse_rate = n / (time.perf_counter() - t0)
            if len(parsed.items) != n:
                raise RuntimeError(f"the bench's own feed did not parse: {parsed.skipped[:3]}")
            del parsed
            t0 = time.perf_counter()
            parse_stix(feed.read_bytes(), default_tlp="GREEN", workers=cores())
            spread_rate = n / (time.perf_counter() - t0)
            first = _publish(feed, n, env)
            again = _publish(feed, n, env)
            as_json = _publish(_feed(root / "feed-json.json", n), n, env, "--json")

    print(f"{n:,} indicators, {size / 1e6:.1f} MB; `jcu publish --stix FEED --to enisa`")
    print(f"{'parse_stix alone (the baseline)':<40} {parse_rate:8,.0f} objects/s")
    spread = f"parse_stix, checks on {cores()} processes"
    print(f"{spread:<40} {spread_rate:8,.0f} objects/s  (x{spread_rate / parse_rate:4.2f})")
    _line("jcu publish, start to exit", n, first, parse_rate, goal=True)
    _line("jcu publish again (all already sent)", n, again, parse_rate)
    _line("jcu publish --json (a new feed)", n, as_json, parse_rate)
    record(
        "feed",
        {
            "publish_objects_per_s": first.rate(n),
            "publish_cpu_us": first.cpu_us,
            "publish_rss_mib": first.rss_mib,
            "again_objects_per_s": again.rate(n),
            "json_objects_per_s": as_json.rate(n),
            "json_rss_mib": as_json.rss_mib,
            "parse_objects_per_s": parse_rate,
            "parse_spread_objects_per_s": spread_rate,
        },
        objects=n,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main(args.objects))
