"""A Kafka broker for a benchmark run: KAFKA_BOOTSTRAP if set, else a local one it starts."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from broker import config
from broker.kafka.local import LocalKafka, free_port


@dataclass(frozen=True, slots=True)
class BenchKafka:
    bootstrap: str
    #: The broker's pid when the bench started it (its CPU can then be counted), else None.
    pid: int | None = None


@asynccontextmanager
async def kafka_for_bench() -> AsyncIterator[BenchKafka]:
    env = os.environ.get("KAFKA_BOOTSTRAP")
    if env:
        yield BenchKafka(env)
        return
    with tempfile.TemporaryDirectory(prefix="jcu-bench-kafka-") as tmp:
        local = LocalKafka(
            Path(tmp),
            port=free_port(),
            controller_port=free_port(),
            cache_dir=config.load().kafka_cache,
            heap="1g",
        )
        await local.start()
        try:
            yield BenchKafka(local.bootstrap, local.status().pid)
        finally:
            local.stop()
