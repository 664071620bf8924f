"""A Kafka broker for a benchmark run: KAFKA_BOOTSTRAP if set, else a local one it starts."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from broker import config
from broker.kafka.local import LocalKafka, free_port


@asynccontextmanager
async def kafka_for_bench() -> AsyncIterator[str]:
    env = os.environ.get("KAFKA_BOOTSTRAP")
    if env:
        yield env
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
            yield local.bootstrap
        finally:
            local.stop()
