"""Verifying the audit log at scale: time and peak memory at 1M and 5M decisions.

Run: .venv/bin/python -m bench.audit_verify [--sizes 1000000,5000000] [--no-kafka]

A synthetic log (bench/_auditlog.py: per message a publish leaf of 14
decisions, its send-outcome leaf and 5 receiving leaves, sealed, chained and
checkpointed as enforcement points write them) of each size is written once to
files; then, in a fresh process each, the streaming verifier (`Verifier`, what
`jcu audit verify` runs) reads them and checks everything: every leaf's chain
link and index, every checkpoint's signature and consistency proof, the root
of each enforcement point's tree against its latest checkpoint. Printed per
size: leaves, decisions, seconds, leaves/s and decisions/s, and the peak RSS of
the verifying process; then the ratios 5M/1M of time (linear: about 5) and of
peak RSS (bounded: about 1). With Kafka (unless --no-kafka), the 1M log also
goes to a topic and the same verifier reads it through the consumer that `jcu
audit verify` uses (the stated bound is checked in tests/broker/audit/
test_verify_scale.py with `jcu audit verify` itself).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from bench._auditlog import (
    LEAVES_PER_MESSAGE,
    PER_MESSAGE,
    PUBLISHER,
    RECEIVERS,
    SyntheticLog,
    peak_rss,
    read_file,
    to_kafka,
    write_files,
)

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def _signers(directory: Path) -> dict[str, ed25519.Ed25519PrivateKey]:
    """Fresh keys, their public halves written for the verifying process."""
    signers = {p: ed25519.Ed25519PrivateKey.generate() for p in (PUBLISHER, *RECEIVERS)}
    (directory / "keys.json").write_text(
        json.dumps({p: k.public_key().public_bytes_raw().hex() for p, k in signers.items()})
    )
    return signers


def _resolver(directory: Path):  # type: ignore[no-untyped-def]
    raw = json.loads((directory / "keys.json").read_text())
    keys = {p: ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(h)) for p, h in raw.items()}
    return lambda name: [keys[name.partition("/")[0]]] if name.partition("/")[0] in keys else []


def _verify_files(directory: Path) -> None:
    """In the measured process: stream both files through the verifier; print JSON."""
    from broker.audit import Verifier
    from broker.audit.pack import PackCodec
    from broker.audit.topic import TopicRecord, unpack
    from broker.schemas import SchemaStore

    store = SchemaStore.load(SCHEMAS)
    packs = PackCodec(store)
    start = time.perf_counter()
    v = Verifier(store, _resolver(directory))
    for ep, value, offset in read_file(directory / "checkpoints.bin"):
        v.checkpoint(TopicRecord(ep, value, 0, offset))
    for ep, value, offset in read_file(directory / "decisions.bin"):
        for leaf in unpack(packs, TopicRecord(ep, value, 0, offset)):
            v.record(leaf)
    report = v.finish()
    _print(report, time.perf_counter() - start)


def _verify_kafka(directory: Path, client_file: str, decisions: str, checkpoints: str) -> None:
    """In the measured process: the same, read from Kafka as `jcu audit verify` reads it
    (as the principal of `client_file`: an auditor's, or the admin's here)."""
    from broker.audit import Verifier
    from broker.audit.topic import iter_topic
    from broker.kafka.connection import read_client_file
    from broker.schemas import SchemaStore

    kafka = read_client_file(Path(client_file))

    async def main() -> None:
        store = SchemaStore.load(SCHEMAS)
        start = time.perf_counter()
        v = Verifier(store, _resolver(directory))
        async for batch in iter_topic(kafka, checkpoints):
            for raw in batch:
                v.checkpoint(raw)
        async for batch in iter_topic(kafka, decisions, store=store):
            for raw in batch:
                v.record(raw)
        _print(v.finish(), time.perf_counter() - start)

    asyncio.run(main())


def _print(report: object, seconds: float) -> None:
    reports = report.reports  # type: ignore[attr-defined]
    assert report.ok, [r.failure for r in reports]  # type: ignore[attr-defined]
    print(
        json.dumps(
            {
                "leaves": sum(r.records for r in reports),
                "decisions": sum(r.decisions for r in reports),
                "checkpoints": sum(r.checkpoints for r in reports),
                "seconds": seconds,
            }
        )
    )


def _measure(argv: list[str]) -> tuple[dict[str, float], float]:
    """Run `argv` (a fresh Python), return what it printed and its peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path, err_path = Path(tmp) / "out", Path(tmp) / "err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            code, rss = peak_rss(argv, Path(tmp) / "rss", stdout=out, stderr=err)
        if code != 0:
            raise SystemExit(f"verification failed: {err_path.read_text()[-2000:]}")
        return json.loads(out_path.read_text()), rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000", help="decisions, comma-separated")
    parser.add_argument("--no-kafka", action="store_true", help="skip the Kafka leg")
    parser.add_argument("--verify-files", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--verify-kafka", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.verify_files:
        _verify_files(args.verify_files)
        return
    if args.verify_kafka:
        directory, client_file, decisions, checkpoints = args.verify_kafka
        _verify_kafka(Path(directory), client_file, decisions, checkpoints)
        return

    from broker import logs
    from broker.schemas import SchemaStore

    logs.configure("console", "WARNING")
    store = SchemaStore.load(SCHEMAS)
    sizes = [int(s) for s in args.sizes.split(",")]
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"audit verify bench: per message {PER_MESSAGE} decisions in {LEAVES_PER_MESSAGE} "
        f"leaves (a publish leaf of 14, its send outcome, 5 receiving leaves), "
        f"6 enforcement points, a checkpoint every 1,000 leaves each"
    )
    results: dict[int, tuple[dict[str, float], float]] = {}
    with tempfile.TemporaryDirectory(prefix="jcu-bench-verify-") as tmp:
        for n in sizes:
            directory = Path(tmp) / str(n)
            directory.mkdir()
            log = SyntheticLog(store, _signers(directory))
            t0 = time.perf_counter()
            write_files(log, max(1, n // PER_MESSAGE), directory)
            written = time.perf_counter() - t0
            size = (directory / "decisions.bin").stat().st_size / 2**20
            argv = [sys.executable, "-m", "bench.audit_verify", "--verify-files", str(directory)]
            out, rss = _measure(argv)
            results[n] = (out, rss)
            print(
                f"  {out['decisions']:>10,.0f} decisions, {out['leaves']:>9,.0f} leaves "
                f"({size:,.0f} MiB, written in {written:.0f} s): verified in "
                f"{out['seconds']:6.1f} s = {out['leaves'] / out['seconds']:>8,.0f} leaves/s, "
                f"{out['decisions'] / out['seconds']:>9,.0f} decisions/s; peak RSS {rss:5.0f} MiB"
            )
            for f in directory.glob("*.bin"):
                f.unlink()
        if len(sizes) >= 2:
            (small, rss_small), (large, rss_large) = results[sizes[0]], results[sizes[-1]]
            scale = large["decisions"] / small["decisions"]
            print(
                f"  {sizes[-1]:,} / {sizes[0]:,}: {scale:.1f}x the decisions took "
                f"{large['seconds'] / small['seconds']:.2f}x the time (linear: {scale:.1f}x) "
                f"and {rss_large / rss_small:.2f}x the peak RSS (bounded: 1.0x)"
            )
        if not args.no_kafka:
            asyncio.run(_kafka_leg(store, Path(tmp), sizes[0]))
    print(f"  (this bench process: {base_rss:.0f} MiB at start)")


async def _kafka_leg(store: object, tmp: Path, n: int) -> None:
    from bench._kafka import kafka_for_bench

    directory = tmp / "kafka"
    directory.mkdir()
    log = SyntheticLog(store, _signers(directory))  # type: ignore[arg-type]
    async with kafka_for_bench() as kafka:
        t0 = time.perf_counter()
        decisions, checkpoints = await to_kafka(kafka.admin, log, max(1, n // PER_MESSAGE))
        written = time.perf_counter() - t0
        argv = [
            sys.executable,
            "-m",
            "bench.audit_verify",
            "--verify-kafka",
            str(directory),
            str(kafka.admin_file),
            decisions,
            checkpoints,
        ]
        out, rss = await asyncio.to_thread(_measure, argv)
    print(
        f"  from Kafka: {out['decisions']:>10,.0f} decisions, {out['leaves']:>9,.0f} leaves "
        f"(produced in {written:.0f} s): verified in {out['seconds']:6.1f} s = "
        f"{out['leaves'] / out['seconds']:>8,.0f} leaves/s; peak RSS {rss:5.0f} MiB"
    )


if __name__ == "__main__":
    main()
