"""Shared fixtures. Integration tests get a REAL Kafka broker from `kafka_bootstrap`.

Choice, in order: `KAFKA_BOOTSTRAP` from the environment; a testcontainers
Kafka (official apache/kafka image) where a Docker engine answers; otherwise
the local broker from Maven Central jars on a free port with a temporary data
directory, stopped at the end of the session. Kafka is never mocked.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import config
from broker.kafka.local import LocalKafka, free_port
from tests.world import World, make_world

KAFKA_IMAGE = "apache/kafka:4.1.1"


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = os.environ.get("KAFKA_BOOTSTRAP")
    if env:
        yield env
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    data_dir: Path = tmp_path_factory.mktemp("kafka")
    port = free_port()
    controller = free_port()
    local = LocalKafka(
        data_dir, port=port, controller_port=controller, cache_dir=config.load().kafka_cache
    )
    asyncio.run(local.start(timeout=120))
    try:
        yield local.bootstrap
    finally:
        local.stop()


@pytest.fixture
def jcu_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated JCU_HOME (keystore, state) for one test."""
    home = tmp_path / "jcu-home"
    home.mkdir()
    monkeypatch.setenv("JCU_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """An initialised JCU_HOME (keys, registry) and every contract topic on the real broker."""
    yield from make_world(kafka_bootstrap, tmp_path_factory)
