"""One initialised world on the real broker: keys, signed registry, contract topics.

Session-scoped (the `world` fixture in tests/conftest.py) because key
generation is deliberately slow (scrypt) and the topic names are a contract
shared by every test: tests keep apart by their own message ids and consumer
groups, never by mocking.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker import config
from broker.config import Settings
from broker.pep.context import PepContext

PASSPHRASE = "test-only passphrase, not a secret"


@dataclass(frozen=True)
class World:
    settings: Settings
    env: dict[str, str]
    ctx: PepContext

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap

    def group(self, name: str) -> str:
        return f"jcu.test.{name}.{uuid.uuid4().hex[:8]}"


def make_world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Initialise keys and topics in a fresh JCU_HOME, with the environment set meanwhile."""
    from broker.cli.init import init_keys
    from broker.kafka.topics import contract_topics, ensure_topics

    home: Path = tmp_path_factory.mktemp("world")
    env = {
        "JCU_HOME": str(home),
        "JCU_KEY_PASSPHRASE": PASSPHRASE,
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        settings = config.load()
        init_keys(settings)
        asyncio.run(ensure_topics(kafka_bootstrap, contract_topics(partitions=2)))
        yield World(settings, {**os.environ, **env}, PepContext.load(settings))
