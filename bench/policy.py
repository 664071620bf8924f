"""Policy decision throughput: cold (every decision asks Cedar) vs steady state (cache).

Run: .venv/bin/python -m bench.policy [--seconds 2]

Prints decisions per second for single cold decisions, batched cold decisions
(decide_all: one Cedar batch per message), cached decisions, the p99 latency
of a cold single decision, and the cached/cold ratio, all measured in this run
on the sample bundle and registry. Targets: >= 100,000 cached decisions/s on
one core; cold p99 < 2 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Sequence

from broker import config
from broker.policy import TLPS, Message, PolicyEngine
from broker.trust.registry import CATEGORIES, load_registry

_PD_FIELDS = {"IncidentReport": ("reporter", "affected_persons"), "AssistanceRequest": ("contact",)}


def _pd_fields(payload_type: str) -> Sequence[str]:
    return _PD_FIELDS.get(payload_type, ())


def _messages(orgs: list[str], n: int, seed: int = 7) -> list[Message]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        named = frozenset(rnd.sample(orgs, 2)) if rnd.random() < 0.15 else frozenset()
        out.append(
            Message(
                sender=rnd.choice(orgs),
                payload_type=rnd.choice(["Indicator", "IncidentReport", "SituationReport"]),
                tlp=rnd.choice(TLPS),
                categories=frozenset(rnd.sample(CATEGORIES, rnd.randint(1, 2))),
                handling=frozenset(rnd.choice([(), (), ("H0",), ("H1",), ("H2",), ("H1", "H2")])),
                personal_data=rnd.random() < 0.2,
                recipients=named,
                incident=rnd.choice([None, "INC-1"]),
                member_states=frozenset(rnd.sample(["FR", "DE", "BE"], rnd.randint(0, 2))),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    args = parser.parse_args()

    settings = config.load()
    registry = load_registry(settings.policies / "participants.yaml")
    engine = PolicyEngine.load(settings.policies, registry, personal_data_fields=_pd_fields)
    orgs = sorted(registry.participants)
    msgs = _messages(orgs, 2000)
    pairs = [(m, org) for m in msgs for org in orgs if org != m.sender]
    crisis = frozenset({"INC-1"})

    # cold, one decision at a time: every call asks Cedar (2-4 requests in one batch)
    latencies: list[float] = []
    deadline = time.perf_counter() + args.seconds
    i = 0
    while time.perf_counter() < deadline:
        m, org = pairs[i % len(pairs)]
        t0 = time.perf_counter()
        engine.decide(m, org, crisis_incidents=crisis, cached=False)
        latencies.append(time.perf_counter() - t0)
        i += 1
    cold_rate = len(latencies) / sum(latencies)
    p50 = statistics.median(latencies) * 1e3
    p99 = statistics.quantiles(latencies, n=100)[98] * 1e3

    # cold, batched per message: decide_all asks Cedar once for all organisations
    count, start, j = 0, time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        count += len(engine.decide_all(msgs[j % len(msgs)], crisis_incidents=crisis, cached=False))
        j += 1
    batch_rate = count / (time.perf_counter() - start)

    # steady state: warm the cache on the same messages, then decide them again
    for m in msgs:
        engine.decide_all(m, crisis_incidents=crisis)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for m, org in pairs[:20000]:
            engine.decide(m, org, crisis_incidents=crisis)
        count += min(len(pairs), 20000)
    cached_rate = count / (time.perf_counter() - start)

    count, start, j = 0, time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        count += len(engine.decide_all(msgs[j % len(msgs)], crisis_incidents=crisis))
        j += 1
    cached_all_rate = count / (time.perf_counter() - start)

    print(
        f"policy bench: {len(engine.rules)} rules, {len(orgs)} organisations, {len(msgs)} messages"
    )
    print(f"  cold single   {cold_rate:>12,.0f} decisions/s   p50 {p50:.3f} ms   p99 {p99:.3f} ms")
    print(
        f"  cold batched  {batch_rate:>12,.0f} decisions/s   (decide_all, one Cedar batch/message)"
    )
    print(f"  cached single {cached_rate:>12,.0f} decisions/s   ({engine.cache_size():,} outcomes)")
    print(f"  cached batch  {cached_all_rate:>12,.0f} decisions/s   (decide_all)")
    print(f"  ratio cached/cold single  {cached_rate / cold_rate:8.1f}x")
    print(f"  ratio cached/cold batched {cached_all_rate / batch_rate:8.1f}x")
    print(f"  ratio cold batched/single {batch_rate / cold_rate:8.1f}x")
    ok_cached = cached_rate >= 100_000
    ok_p99 = p99 < 2.0
    print(
        f"  target cached >= 100,000/s: {'met' if ok_cached else 'MISSED'}; "
        f"cold p99 < 2 ms: {'met' if ok_p99 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
