"""A subscriber's memory against its history: peak RSS of `jcu subscribe` at 10k and 200k.

Run: .venv/bin/python -m bench.subscriber_memory [--start 10000 --messages 200000]

`--start` messages are published and received by `jcu subscribe --once` into
JSON lines (the baseline, in the same run); then the rest up to `--messages`,
received by the same channel into the same file (which holds the first ones),
and once more by a new channel from the beginning (all of them in one run).
Each run's resident memory while it delivers (sampled from /proc every 0.2 s)
is printed with its ratio to the baseline's: flat (about 1) when memory
depends on configuration, not history. Each run's peak is printed too: the
kernel's high-water mark of that process (VmHWM), set at start-up by the
keystore's scrypt (128 MiB for about half a second, a security parameter: see
docs/performance.md). Not `ru_maxrss` of the child: Linux carries the parent's
resident size at fork into it, so that figure was this bench's own memory.

Kafka: KAFKA_BOOTSTRAP if set, else a local broker started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._kafka import federation_homes, kafka_for_bench
from bench._load import CHUNK, count_lines, indicator
from bench._results import record
from broker import config, logs
from broker.envelope import Labels
from broker.pep import Publication, Publisher
from broker.pep.context import PepContext

MIB = 1024 * 1024
GOAL_STEADY_BYTES = 200e6  # issue 19: subscriber RSS at steady state < 200 MB


async def _publish(ctx: PepContext, first: int, n: int) -> None:
    labels = Labels.of("RED", categories=["malicious-code"])
    async with Publisher("soc-fr", ctx) as pub:
        for start in range(first, first + n, CHUNK):
            count = min(CHUNK, first + n - start)
            await pub.publish_many(
                [
                    Publication("Indicator", indicator(i, "c2", padding=400), labels, ("enisa",))
                    for i in range(start, start + count)
                ]
            )


def _rss_mib(pid: int, field: str = "VmRSS") -> float | None:
    """A process's resident size now (VmRSS) or its peak so far (VmHWM), MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return None


def _subscribe(env: dict[str, str], out: Path, group: str) -> tuple[float, float, float]:
    """`jcu subscribe --once` until the end of the topics: (the process's peak RSS, the
    largest RSS sampled every 0.2 s once it was delivering, in MiB; seconds)."""
    argv = [
        sys.executable,
        "-m",
        "broker.cli",
        "subscribe",
        "--once",
        "--no-receipts",
        "--out",
        str(out),
        "--group",
        group,
    ]
    sink = out / "enisa.jsonl"
    before = sink.stat().st_size if sink.exists() else 0
    sampled = peak = 0.0
    t0 = time.perf_counter()
    with (out.parent / f"{group}.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env)
        while proc.poll() is None:
            peak = max(peak, _rss_mib(proc.pid, "VmHWM") or 0.0)
            rss = _rss_mib(proc.pid)
            if rss is not None and sink.exists() and sink.stat().st_size > before:
                sampled = max(sampled, rss)
            time.sleep(0.2)
    if proc.returncode != 0:
        raise RuntimeError(f"jcu subscribe exited {proc.returncode}: see {log.name}")
    return peak, sampled, time.perf_counter() - t0


async def main(start: int, total: int) -> None:
    logs.configure("console", "WARNING")
    with tempfile.TemporaryDirectory(prefix="jcu-bench-") as tmp:
        async with kafka_for_bench() as kafka:
            envs = await federation_homes(kafka, Path(tmp) / "federation", "soc-fr", "enisa")
            ctx = PepContext.load(config.load(envs["soc-fr"]), envs["soc-fr"])
            out, fresh = Path(tmp) / "out", Path(tmp) / "fresh"
            out.mkdir()
            fresh.mkdir()
            print(f"kafka {kafka.bootstrap}; indicators of ~0.6 KiB to enisa, JSON lines sink")

            await _publish(ctx, 0, start)
            peaks = []
            peak, base, took = await asyncio.to_thread(_subscribe, envs["enisa"], out, "enisa.a")
            peaks.append(peak)
            print(
                f"{start:>8,} delivered (baseline)          : RSS {base:7.1f} MiB  "
                f"({took:.0f} s; its peak {peak:.1f} MiB)"
            )
            await _publish(ctx, start, total - start)
            peak, more, took = await asyncio.to_thread(_subscribe, envs["enisa"], out, "enisa.a")
            peaks.append(peak)
            lines = count_lines(out / "enisa.jsonl")
            print(
                f"{total - start:>8,} more, {lines:,} lines in the file : RSS {more:7.1f} MiB  "
                f"({took:.0f} s; its peak {peak:.1f} MiB)  ratio {more / base:.2f}"
            )
            peak, whole, took = await asyncio.to_thread(_subscribe, envs["enisa"], fresh, "enisa.b")
            peaks.append(peak)
            print(
                f"{total:>8,} in one run (a new channel)   : RSS {whole:7.1f} MiB  "
                f"({took:.0f} s; its peak {peak:.1f} MiB)  ratio {whole / base:.2f}"
            )
    print("flat: ratios about 1 (memory bounded by configuration, not by history)")
    steady = max(base, more, whole)
    verdict = "met" if steady * MIB < GOAL_STEADY_BYTES else "MISSED"
    print(
        f"steady state {steady:.1f} MiB ({steady * MIB / 1e6:.0f} MB): goal < 200 MB: {verdict}; "
        f"start-up peak {max(peaks):.1f} MiB (the keystore's scrypt: 128 MiB for ~0.5 s)"
    )
    record(
        "subscriber_memory",
        {
            "steady_mb": steady * MIB / 1e6,
            "steady_mib": steady,
            "peak_mib": max(peaks),
            "ratio": whole / base,
        },
        start=start,
        messages=total,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    asyncio.run(main(args.start, args.messages))
