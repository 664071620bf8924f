"""Issue 19's "Must show" table: each figure the benches last wrote, next to its goal.

Run: .venv/bin/python -m bench.summary   (`make bench` runs it after the benches)

Reads what each bench wrote with bench._results (`JCU_BENCH_RESULTS`, by default
`bench-results/`); a bench that has not written its figures shows "not run". Each
figure says when its bench ran: a figure from an older run than the others is
visible as such. It measures nothing itself.
"""

from __future__ import annotations

import argparse
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench._results import load, results_dir


@dataclass(frozen=True, slots=True)
class Figure:
    """One row: where its value is kept, how it is shown, and its goal."""

    name: str
    bench: str
    key: str
    unit: str
    goal: float | None = None
    better: Callable[[float, float], bool] = operator.lt  # value better(goal) = met

    def goal_text(self) -> str:
        if self.goal is None:
            return ""
        sign = "<" if self.better is operator.lt else ">="
        return f"{sign} {_number(self.goal)}{self.unit}"


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


SINKS = ("jsonl", "stix", "misp", "misp-feed", "taxii", "siena")

#: Issue 19's "Must show", in its order, then what docs/performance.md argues from.
FIGURES: tuple[Figure, ...] = (
    Figure("full path / raw aiokafka (1 KiB, 5 recipients)", "pipeline", "full_over_raw", "",
           0.50, operator.ge),
    Figure("skeleton / raw", "pipeline", "skeleton_over_raw", "", 0.85, operator.ge),
    Figure("full path / skeleton", "pipeline", "full_over_skeleton", "", 0.60, operator.ge),
    Figure("jcu publish start to first object sent", "startup", "publish_first_sent_s", " s",
           0.4),
    Figure("publish of a STIX file, objects/s", "stix", "publish_objects_per_s", "/s",
           3_000, operator.ge),
    Figure("jcu publish --stix of an indicator feed, start to exit", "feed",
           "publish_objects_per_s", "/s", 3_000, operator.ge),
    Figure("jcu publish --stix of an indicator feed, peak RSS", "feed", "publish_rss_mib",
           " MiB"),
    *(
        Figure(f"sink {fmt}, deliveries/s steady", "sinks", f"{fmt}_per_s", "/s", 2_000,
               operator.ge)
        for fmt in SINKS
    ),
    Figure("sink taxii, deliveries/s (bench.taxii's)", "taxii", "sink_batched_per_s", "/s",
           2_000, operator.ge),
    Figure("received through jcu subscribe into jsonl, objects/s", "stix", "sink_jsonl_per_s",
           "/s"),
    Figure("end-to-end latency at 1,000 msg/s, p99", "latency", "p99_ms", " ms", 100),
    Figure("TAXII page of 100, p95 (worst query), big store", "taxii", "page_p95_ms", " ms",
           300),
    Figure("subscriber RSS at steady state", "subscriber_memory", "steady_mb", " MB", 200),
    Figure("subscriber RSS, start-up peak", "subscriber_memory", "peak_mib", " MiB"),
    Figure("one subscriber process, deliveries/s", "scaling", "one_per_s", "/s"),
    Figure("two subscriber processes, deliveries/s", "scaling", "two_per_s", "/s"),
    Figure("two / one subscriber processes", "scaling", "two_over_one", ""),
)  # fmt: skip


def rows(figures: tuple[Figure, ...] = FIGURES) -> list[tuple[str, str, str, str, str]]:
    """(figure, measured, goal, verdict, from which run) for each figure."""
    docs: dict[str, dict[str, Any] | None] = {}
    out = []
    for f in figures:
        if f.bench not in docs:
            docs[f.bench] = load(f.bench)
        doc = docs[f.bench]
        value = (doc or {}).get("figures", {}).get(f.key)
        if doc is None or not isinstance(value, int | float):
            out.append((f.name, "not run", f.goal_text(), "", f"bench.{f.bench}"))
            continue
        verdict = "" if f.goal is None else ("met" if f.better(value, f.goal) else "MISSED")
        about = doc.get("about", {})
        note = ", ".join(f"{k} {v}" for k, v in sorted(about.items()))
        where = f"bench.{f.bench} {doc.get('at', '?')}" + (f" ({note})" if note else "")
        out.append((f.name, f"{_number(value)}{f.unit}", f.goal_text(), verdict, where))
    return out


def main() -> None:
    table = rows()
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    print(f"\nissue 19, must show (from {results_dir()}/):")
    for name, value, goal, verdict, where in table:
        print(
            f"  {name:<{widths[0]}}  {value:>{widths[1]}}  {goal:<{widths[2]}}  "
            f"{verdict:<{widths[3]}}  {where}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    main()
