"""A Kafka cluster for a benchmark run: KAFKA_BOOTSTRAP (with its admin's client settings:
JCU_KAFKA_CONFIG or JCU_KAFKA_*) if set, else a local, secured one it starts."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from broker import config
from broker.files import write_private
from broker.kafka.connection import KafkaConnection, client_file_text
from broker.kafka.local import LocalKafka, free_ports


@dataclass(frozen=True, slots=True)
class BenchKafka:
    #: the platform admin's connection: the bench's own topics are made and used with it
    admin: KafkaConnection
    #: the same as a client file, for processes the bench starts (JCU_KAFKA_CONFIG)
    admin_file: Path
    #: The broker's pid when the bench started it (its CPU can then be counted), else None.
    pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return self.admin.bootstrap


@asynccontextmanager
async def kafka_for_bench() -> AsyncIterator[BenchKafka]:
    with tempfile.TemporaryDirectory(prefix="jcu-bench-kafka-") as tmp:
        if os.environ.get("KAFKA_BOOTSTRAP"):
            admin = config.load().kafka
            admin_file = write_private(Path(tmp) / "admin.toml", client_file_text(admin).encode())
            yield BenchKafka(admin, admin_file)
            return
        local = LocalKafka(
            Path(tmp), port=free_ports(3), cache_dir=config.load().kafka_cache, heap="1g"
        )
        await local.start()
        try:
            yield BenchKafka(local.connection(), local.admin_config, local.status().pid)
        finally:
            local.stop()
