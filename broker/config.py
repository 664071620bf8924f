"""Where things live: data directories, state, caches.

Configuration is the only global state we allow. It is read from the
environment on demand (never at import time), so tests and services can point
a process elsewhere by setting variables before they call `load()`.

Environment variables:
  JCU_HOME          state directory (keystore, dedup stores, audit state);
                    default ~/.local/state/jcu-broker
  JCU_CACHE         cache directory (Kafka jars); default ~/.cache/jcu-broker
  JCU_POLICIES      directory with participants.yaml and the Cedar bundle
  JCU_SCHEMAS       directory with the Avro schemas (.avsc)
  KAFKA_BOOTSTRAP   bootstrap servers of the Kafka cluster to use
  JCU_KAFKA_CONFIG  the Kafka client file (default $JCU_HOME/kafka.toml): how this
                    home connects and as which Kafka principal (broker.kafka.connection)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from broker.kafka.connection import DEFAULT_BOOTSTRAP, KafkaConnection, load_connection

__all__ = ["DEFAULT_BOOTSTRAP", "Settings", "examples_dir", "load"]


def _package_data(name: str) -> Path:
    """Find a data directory: the wheel's copy first, else the source checkout's."""
    here = Path(__file__).resolve().parent
    bundled = here / "_data" / name
    if bundled.is_dir():
        return bundled
    return here.parent / name


def examples_dir() -> Path:
    """The fictitious scenario shipped with the package (the repository's examples/): what
    `jcu demo` publishes unless told otherwise, and sample input for trying the verbs."""
    return _package_data("examples")


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    cache: Path
    policies: Path
    schemas: Path
    #: how every Kafka client of this home connects, and as which principal
    kafka: KafkaConnection

    @property
    def bootstrap(self) -> str:
        """The cluster's address (for messages; clients take `kafka`)."""
        return self.kafka.bootstrap

    @property
    def keystore(self) -> Path:
        return keystore_dir(self.home)

    @property
    def kafka_cache(self) -> Path:
        return self.cache / "kafka"


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """JCU_HOME, or its default."""
    e = os.environ if env is None else env
    return Path(e.get("JCU_HOME") or Path.home() / ".local" / "state" / "jcu-broker").expanduser()


def keystore_dir(home: Path) -> Path:
    """Where a home keeps its keystore."""
    return home / "keys"


def load(env: dict[str, str] | None = None) -> Settings:
    e = os.environ if env is None else env
    home = home_dir(e)
    cache = Path(e.get("JCU_CACHE") or Path.home() / ".cache" / "jcu-broker")
    policies = Path(e.get("JCU_POLICIES") or _package_data("policies"))
    schemas = Path(e.get("JCU_SCHEMAS") or _package_data("schemas"))
    return Settings(
        home=home,
        cache=cache.expanduser(),
        policies=policies.expanduser(),
        schemas=schemas.expanduser(),
        kafka=load_connection(home, e),
    )
