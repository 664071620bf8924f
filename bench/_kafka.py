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
from broker.kafka.topics import contract_topics, ensure_topics
from broker.trust.federation import build_federation, put_up_walls
from broker.trust.topic import publish_snapshot


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


async def federation_homes(kafka: BenchKafka, root: Path, *orgs: str) -> dict[str, dict[str, str]]:
    """The federation as deployed on the bench's cluster: a home per organisation behind
    the walls (docs/deployment.md), the registry snapshot published; the environment of
    each of `orgs`' nodes, for `PepContext.load` or a process the bench starts."""
    settings = config.load()
    federation = build_federation(
        root,
        None,
        policies=settings.policies,
        schemas=settings.schemas,
        passphrase="bench-only passphrase, never a secret",
    )
    await ensure_topics(kafka.admin, contract_topics())
    await put_up_walls(federation, kafka.admin, schemas=settings.schemas)
    own = {k: v for k, v in os.environ.items() if not k.startswith("JCU_KAFKA_")}
    own["KAFKA_BOOTSTRAP"] = kafka.bootstrap
    authority = config.load({**own, **federation.env("authority")}).kafka
    await publish_snapshot(authority, federation.snapshot.read_bytes())
    return {o: {**own, **federation.env(o)} for o in orgs}
