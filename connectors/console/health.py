"""The broker's health over time: samples of `jcu stats`, consumer lag in records and
seconds, and dead letters by participant and reason, kept in memory for the charts.

A sample is taken every `every` seconds by a background task (explicit
start/stop); rates are differences between consecutive samples.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker.clock import utc_now
from broker.kafka.connection import KafkaConnection
from broker.kafka.lag import PartitionLag, group_lag
from broker.kafka.scan import scan
from broker.kafka.topics import DLQ
from broker.lifecycle import Service
from broker.logs import get_logger

StatsSource = Callable[[KafkaConnection], Awaitable[dict[str, Any]]]
_log = get_logger("connectors.console")


@dataclass(frozen=True, slots=True)
class GroupSample:
    group: str
    lag_records: int
    lag_seconds: float
    committed: int


@dataclass(frozen=True, slots=True)
class Sample:
    time: datetime
    topics: dict[str, int]
    groups: dict[str, GroupSample]
    #: (participant, reason) -> dead letters
    dead_letters: dict[tuple[str, str], int]
    policy_violations: list[dict[str, Any]] = field(default_factory=list)


def _groups(lags: list[PartitionLag], now: datetime) -> dict[str, GroupSample]:
    out: dict[str, GroupSample] = {}
    for lag in lags:
        g = out.get(lag.group)
        rec, sec = lag.records, lag.seconds(now)
        if g is None:
            out[lag.group] = GroupSample(lag.group, rec, sec, lag.committed)
        else:
            out[lag.group] = GroupSample(
                g.group, g.lag_records + rec, max(g.lag_seconds, sec), g.committed + lag.committed
            )
    return out


async def _dead_letters(kafka: KafkaConnection) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter()
    async for r in scan(kafka, [DLQ]):
        hdr = dict(r.headers or ())
        who = bytes(hdr.get("jcu.participant", b"?")).decode(errors="replace")
        why = bytes(hdr.get("jcu.reason", b"unknown")).decode(errors="replace")
        counts[(who, why)] += 1
    return dict(counts)


class Health(Service):
    def __init__(
        self,
        kafka: KafkaConnection,
        stats: StatsSource,
        *,
        every: float = 15.0,
        keep: int = 240,
        on_sample: Callable[[Sample], Awaitable[None]] | None = None,
    ) -> None:
        self._on_sample = on_sample
        self._kafka = kafka
        self._stats = stats
        self.every = every
        #: the history, in memory only: since the console started, the newest `keep`
        self.samples: deque[Sample] = deque(maxlen=keep)
        self.keep = keep
        self.started: datetime | None = None
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def sample(self) -> Sample:
        now = utc_now()
        stats = await self._stats(self._kafka)
        lags = await group_lag(self._kafka)
        dead = await _dead_letters(self._kafka)
        s = Sample(
            now,
            dict(stats.get("topics", {})),
            _groups(lags, now),
            dead,
            list(stats.get("policy_violations", [])),
        )
        self.samples.append(s)
        if self._on_sample is not None:
            await self._on_sample(s)
        return s

    async def start(self) -> None:
        self.started = utc_now()
        await self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.sample()
                self.error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away: keep the history, say so on the page
                self.error = f"{type(exc).__name__}: {exc}"
                _log.warning("health sample failed", error=self.error)
