"""What a user waits for before anything happens: `jcu` start-up, against Python's own.

Run: .venv/bin/python -m bench.startup [--runs 5]

Every figure is the median of `--runs` runs of a fresh `jcu` process (after
one warm-up run of each, so the machine is warm: page cache, bytecode, the
node's state made), as a real operator would start it, on a real federation home
(soc-fr's and enisa's nodes, keys under scrypt, a signed registry snapshot)
against a real, secured Kafka:

- `jcu --help`: start to exit;
- `jcu publish --stix` of a bundle of one indicator (a new one each run), at
  the default log level: start (the wall clock just before the process is
  started) to the first object sent, i.e. appended to its data topic: the
  record's LogAppendTime, stamped by the broker on this machine's clock (it
  includes the producer's linger and the round trip, so it is slightly later
  than the moment the envelope was handed to the client); start to exit is
  printed as well (it adds the audit checkpoint and the clients' close);
- `jcu subscribe --once` (enisa, JSON lines into a directory): start to its
  first poll, read from the subscriber's own `polling` log event (INFO, JSON:
  its timestamp; the run imports structlog for it, which a run at the default
  level does not, so this figure is pessimistic by that import), and start to
  exit.

Baselines in the same run: `python -c pass` (the interpreter alone) and
`python -c "import aiokafka, cryptography"` (the two libraries any client
needs). Each figure is printed next to the goal (< 0.4 s for publish, well
under a second for subscribe) and as ratios against both baselines. Also
timed: a process that only runs the keystore's scrypt at its cost (N=2**17,
a security parameter, never lowered): every verb that opens a key pays it
once, now while it imports, parses and connects, so it is the floor here.

With `--against CHECKOUT` (another checkout of this repository, e.g. main's in a
`git worktree`), every publish and subscribe run of this checkout is followed (or,
every other round, preceded) by one of that checkout's code on the same federation
and Kafka (the same `jcu` script with PYTHONPATH=CHECKOUT), and both medians are
printed with their ratio: on a machine whose load moves, runs taken in turn compare
what two runs one after the other cannot. Both checkouts must hold the same schemas
and policies (the registry snapshot approves one policy bundle).

Kafka: KAFKA_BOOTSTRAP if set, else a local broker started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench._kafka import kafka_for_bench
from bench._results import record
from broker import config, logs
from broker.kafka.clients import consumer, start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import partitions
from broker.kafka.topics import community_topic, contract_topics, ensure_topics
from broker.trust.federation import build_federation, put_up_walls
from broker.trust.keystore import DEFAULT_SCRYPT_N
from broker.trust.topic import publish_snapshot
from broker.vocabulary import COMMUNITIES, STREAMS

PUBLISH_GOAL = 0.4
SUBSCRIBE_GOAL = 1.0
LIBS = "import aiokafka, cryptography"
#: The keystore's passphrase KDF alone, at its cost (broker.trust.keystore): the floor of any
#: verb that opens a key, now run while the rest starts.
SCRYPT = (
    "from cryptography.hazmat.primitives.kdf.scrypt import Scrypt; "
    f"Scrypt(salt=bytes(16), length=32, n={DEFAULT_SCRYPT_N}, r=8, p=1).derive(b'x')"
)
_T = "2026-11-27T10:00:00.000Z"
_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


def _jcu() -> list[str]:
    """The `jcu` console script next to this interpreter (what an operator runs)."""
    script = Path(sys.executable).with_name("jcu")
    return [str(script)] if script.exists() else [sys.executable, "-m", "broker.cli"]


def _bundle(where: Path, n: int) -> Path:
    indicator = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created": _T,
        "modified": _T,
        "pattern_type": "stix",
        "pattern": f"[ipv4-addr:value = '198.51.100.{n % 250 + 1}']",
        "valid_from": _T,
        "object_marking_refs": [_GREEN],
    }
    path = where / f"one-{n}.json"
    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [indicator]}
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path


def _event_time(stderr: str, event: str) -> float:
    """The wall-clock time of the first JSON log line of `event` on `stderr`."""
    for line in stderr.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("event") == event:
            return datetime.fromisoformat(entry["timestamp"]).timestamp()
    raise RuntimeError(f"no {event!r} log event; stderr was:\n{stderr[-2000:]}")


def _run(argv: Sequence[str], env: dict[str, str], event: str | None) -> tuple[float, float, float]:
    """Run `argv`: (its wall-clock start, start to `event` or 0, start to exit)."""
    wall = time.time()
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    total = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, (_event_time(done.stderr, event) - wall if event else 0.0), total


class _DataTopics:
    """The data topics, read as the platform admin: when the first record after a mark was
    appended (LogAppendTime, the broker's clock)."""

    def __init__(self, admin: KafkaConnection) -> None:
        self._admin = admin
        self._client: Any = None
        self._tps: list[Any] = []

    async def start(self) -> None:
        self._client = consumer(self._admin)
        await start_client(self._client, self._admin)
        topics = [community_topic(c, s) for c in COMMUNITIES for s in STREAMS]
        self._tps = await partitions(self._client, topics)
        self._client.assign(self._tps)
        self._client.pause(*self._tps)

    async def stop(self) -> None:
        await self._client.stop()

    async def mark(self) -> dict[Any, int]:
        ends: dict[Any, int] = await self._client.end_offsets(self._tps)
        return ends

    async def first_appended(self, since: dict[Any, int]) -> float:
        """The earliest append time (epoch seconds) of the records after `since`."""
        ends = await self.mark()
        behind = [tp for tp in self._tps if ends[tp] > since[tp]]
        if not behind:
            raise RuntimeError("the publish sent nothing")
        for tp in behind:
            self._client.seek(tp, since[tp])
        self._client.resume(*behind)
        first: float | None = None
        try:
            while [tp for tp in behind if await self._client.position(tp) < ends[tp]]:
                batch = await self._client.getmany(*behind, timeout_ms=1000)
                for records in batch.values():
                    for r in records:
                        at = r.timestamp / 1000
                        first = at if first is None else min(first, at)
        finally:
            self._client.pause(*behind)
        assert first is not None
        return first


Run = Callable[[int], Awaitable[tuple[float, float]]]


async def _median(runs: int, one: Run, name: str = "") -> tuple[float, float]:
    times = [await one(i) for i in range(runs)]
    if name:  # each run, for a machine busy with other work (look at the spread)
        print(f"  {name}: " + ", ".join(f"{a:.3f}/{b:.3f}" for a, b in times), flush=True)
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def _line(name: str, seconds: float, bases: tuple[float, float], goal: float | None) -> None:
    target = f"goal < {goal:.1f} s {'met' if seconds < goal else 'NOT met'}" if goal else ""
    print(
        f"{name:<44} {seconds:6.3f} s   x{seconds / bases[0]:5.1f} of python   "
        f"x{seconds / bases[1]:4.1f} of aiokafka+cryptography   {target}"
    )


async def _in_turn(
    runs: int, ones: Sequence[tuple[str, Run]], name: str
) -> list[tuple[float, float]]:
    """The medians of each of `ones`, run in turn (their order swapped every round)."""
    times: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in ones}
    for i in range(runs):
        for label, one in ones if i % 2 == 0 else tuple(reversed(ones)):
            times[label].append(await one(i))
    for label, _ in ones:  # each run, for a machine busy with other work (look at the spread)
        runs_of = ", ".join(f"{a:.3f}/{b:.3f}" for a, b in times[label])
        print(f"  {name}{label}: {runs_of}", flush=True)
    return [
        (
            statistics.median(t[0] for t in times[label]),
            statistics.median(t[1] for t in times[label]),
        )
        for label, _ in ones
    ]


async def main(runs: int, hold: Path | None = None, against: Path | None = None) -> None:
    logs.configure("console", "ERROR")
    with tempfile.TemporaryDirectory(prefix="jcu-bench-startup-") as tmp:
        root = Path(tmp)
        async with kafka_for_bench() as kafka:
            settings = config.load()
            federation = build_federation(
                root / "federation",
                ("soc-fr", "enisa"),
                policies=settings.policies,
                schemas=settings.schemas,
                passphrase="bench-only passphrase, never a secret",
            )
            await ensure_topics(kafka.admin, contract_topics())
            await put_up_walls(federation, kafka.admin, schemas=settings.schemas)
            # A warm machine has its bytecode cached (pip writes it at install): the warm-up
            # run writes it for this checkout too, whatever PYTHONDONTWRITEBYTECODE says here.
            own = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith("JCU_") and k != "PYTHONDONTWRITEBYTECODE"
            }
            own["KAFKA_BOOTSTRAP"] = kafka.bootstrap
            authority = config.load({**own, **federation.env("authority")}).kafka
            await publish_snapshot(authority, federation.snapshot.read_bytes())
            quiet = {o: {**own, **federation.env(o)} for o in ("soc-fr", "enisa")}
            verbose = {"JCU_LOG_FORMAT": "json", "JCU_LOG_LEVEL": "INFO"}
            logged = {o: {**env, **verbose} for o, env in quiet.items()}
            jcu = _jcu()
            if hold is not None:
                # For profiling by hand: the environments, until the file is removed.
                hold.write_text(json.dumps(quiet), encoding="utf-8")
                print(f"holding: the environments are in {hold}; remove it to stop")
                while hold.exists():
                    await asyncio.sleep(1)
                return
            out = root / "received"
            print(f"kafka {kafka.bootstrap}; {runs} runs each, medians; `{' '.join(jcu)}`")

            def python(code: str) -> Run:
                async def one(_i: int) -> tuple[float, float]:
                    return 0.0, _run([sys.executable, "-c", code], own, None)[2]

                return one

            data = _DataTopics(kafka.admin)
            await data.start()

            # (label, environment) of each checkout's code: this one's, and --against's
            checkouts: list[tuple[str, dict[str, str]]] = [("", {})]
            if against is not None:
                checkouts.append((f" [{against.name}]", {"PYTHONPATH": str(against)}))

            def publish(extra: dict[str, str]) -> Run:
                async def one(i: int) -> tuple[float, float]:
                    path = _bundle(root, i)
                    since = await data.mark()
                    argv = [*jcu, "publish", "--stix", str(path), "--to", "enisa", "--json"]
                    start, _, total = _run(argv, {**quiet["soc-fr"], **extra}, None)
                    return await data.first_appended(since) - start, total

                return one

            def subscribe(extra: dict[str, str]) -> Run:
                async def one(_i: int) -> tuple[float, float]:
                    argv = [*jcu, "subscribe", "--once", "--out", str(out), "--json"]
                    return _run(argv, {**logged["enisa"], **extra}, "polling")[1:]

                return one

            async def help_(_i: int) -> tuple[float, float]:
                return 0.0, _run([*jcu, "--help"], own, None)[2]

            try:
                # warm-up: one of each (bytecode written, the node's state made)
                for one in (python("pass"), help_):
                    await one(10_000)
                for _, extra in checkouts:
                    await publish(extra)(10_000)
                    await subscribe(extra)(10_000)
                bare = (await _median(runs, python("pass")))[1]
                libs = (await _median(runs, python(LIBS)))[1]
                scrypt = (await _median(runs, python(SCRYPT)))[1]
                help_total = (await _median(runs, help_))[1]
                pubs = await _in_turn(
                    runs, [(c, publish(e)) for c, e in checkouts], "publish first sent/exit"
                )
                subs = await _in_turn(
                    runs, [(c, subscribe(e)) for c, e in checkouts], "subscribe first poll/exit"
                )
            finally:
                await data.stop()
            bases = (bare, libs)
            (first, publish_total), (poll, subscribe_total) = pubs[0], subs[0]

            for name, seconds in (("python -c pass", bare), (f"python -c {LIBS!r}", libs)):
                print(f"{name:<44} {seconds:6.3f} s   (baseline)")
            _line(f"python: the keystore's scrypt (N=2**{DEFAULT_SCRYPT_N.bit_length() - 1})",
                  scrypt, bases, None)  # fmt: skip
            _line("jcu --help, start to exit", help_total, bases, None)
            _line("jcu publish --stix, start to first sent", first, bases, PUBLISH_GOAL)
            _line("jcu publish --stix (1 object), start to exit", publish_total, bases, None)
            _line("jcu subscribe --once, start to first poll", poll, bases, SUBSCRIBE_GOAL)
            _line("jcu subscribe --once, start to exit", subscribe_total, bases, None)
            if against is not None:
                (o_first, o_publish), (o_poll, o_subscribe) = pubs[1], subs[1]
                label = checkouts[1][0].strip()
                _line(f"{label} publish to first sent", o_first, bases, PUBLISH_GOAL)
                _line(f"{label} publish to exit", o_publish, bases, None)
                _line(f"{label} subscribe to first poll", o_poll, bases, SUBSCRIBE_GOAL)
                _line(f"{label} subscribe to exit", o_subscribe, bases, None)
                print(
                    f"this checkout / {label}, runs in turn: publish to first sent "
                    f"x{first / o_first:.2f}, subscribe to first poll x{poll / o_poll:.2f}"
                )
            record(
                "startup",
                {"publish_first_sent_s": first, "subscribe_first_poll_s": poll},
                runs=runs,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--hold",
        type=Path,
        default=None,
        metavar="FILE",
        help="Set up, write soc-fr's and enisa's environments to FILE (JSON), measure "
        "nothing and wait until FILE is removed (for profiling by hand).",
    )
    parser.add_argument(
        "--against",
        type=Path,
        default=None,
        metavar="CHECKOUT",
        help="Also time another checkout's code (e.g. main's worktree), run in turn with "
        "this one's, and print both with their ratio.",
    )
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.hold, args.against))
