"""Shared fixtures. Integration tests get a REAL, secured Kafka cluster from `kafka`.

Choice, in order: `KAFKA_BOOTSTRAP` from the environment, with the platform
admin's client settings in the environment too (`JCU_KAFKA_CONFIG` or
`JCU_KAFKA_*`: a super user of that cluster); otherwise the local broker from
Maven Central jars on free ports with a temporary data directory, secured as
`jcu kafka up` secures it (SASL_SSL, SCRAM-SHA-512, StandardAuthorizer,
nothing allowed without an ACL), stopped at the end of the session. Kafka is
never mocked, and no test talks to it unauthenticated.

Lanes: a test is marked by the fixtures it uses (`FIXTURE_MARKS`): whatever requests
`kafka` (directly or through `world`, `kafka_admin`, ...) is `kafka`, whatever requests
`browser` is `browser`, so a new integration test lands in the right lane without a mark.
The unit lane (`-m "not kafka and not browser"`) never starts Kafka: the fixture refuses a
test that is not marked `kafka` (e.g. one reaching it through `request.getfixturevalue`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from broker import config
from broker.files import write_private
from broker.kafka.connection import (
    CONFIG_ENV,
    KafkaConnection,
    client_file_text,
    load_connection,
)
from broker.kafka.local import LocalKafka, free_ports
from tests import samples
from tests.world import World, make_world

#: pytester: tests/test_lanes.py runs small sessions with these hooks
pytest_plugins = ("pytester",)

# Property tests judge behaviour, not speed: on a loaded 2-core machine (or under
# xdist) an example can take seconds, and hypothesis's default 200 ms deadline would
# then fail a correct test. Speed is measured in bench/.
settings.register_profile("jcu", deadline=None)
settings.load_profile("jcu")

#: fixture -> the marker of every test whose fixture closure holds it
FIXTURE_MARKS = {"kafka": "kafka", "browser": "browser"}

_RUNNING = pytest.StashKey[pytest.Item]()


def pytest_configure(config: pytest.Config) -> None:
    """With JCU_REQUIRE_FIXTURES=1 (CI), missing public samples stop the run in one line."""
    if samples.required() and not samples.public_present():
        raise pytest.UsageError(f"{samples.REQUIRE_ENV}=1 but {samples.MISSING}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the fixtures it needs (`FIXTURE_MARKS`), so the lanes stay accurate."""
    for item in items:
        needs = set(getattr(item, "fixturenames", ()))
        for fixture, marker in FIXTURE_MARKS.items():
            if fixture in needs and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember the running test: the session Kafka checks who asks for it."""
    item.config.stash[_RUNNING] = item


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With JCU_REQUIRE_FIXTURES=1, a test skipped for want of the public samples fails."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if samples.required() and report.skipped and samples.MISSING in str(report.longrepr):
        report.outcome = "failed"


@dataclass(frozen=True)
class SessionKafka:
    """The session's cluster: its address, its platform admin, and the runner if it is ours."""

    bootstrap: str
    admin: KafkaConnection
    #: the admin's client file, for `jcu` processes run as the admin (JCU_KAFKA_CONFIG)
    admin_file: Path
    local: LocalKafka | None


@pytest.fixture(scope="session")
def kafka(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SessionKafka]:
    asking = request.config.stash.get(_RUNNING, None)
    if asking is not None and asking.get_closest_marker("kafka") is None:
        pytest.fail(
            f"{asking.nodeid} is not marked kafka but asked for the session Kafka: "
            "request the `kafka` or `world` fixture as an argument (it is then marked), "
            "or mark it @pytest.mark.kafka",
            pytrace=False,
        )
    if os.environ.get("KAFKA_BOOTSTRAP"):
        admin = load_connection(Path(os.environ.get("JCU_HOME", ".")), os.environ)
        admin_file = tmp_path_factory.mktemp("kafka-admin") / "admin.toml"
        write_private(admin_file, client_file_text(admin).encode())
        yield SessionKafka(admin.bootstrap, admin, admin_file, None)
        return
    data_dir: Path = tmp_path_factory.mktemp("kafka")
    base = free_ports(4)  # client, controller, inter-broker, mTLS clients
    local = LocalKafka(
        data_dir, port=base, mtls_port=base + 3, cache_dir=config.load({}).kafka_cache
    )
    asyncio.run(local.start(timeout=120))
    try:
        yield SessionKafka(local.bootstrap, local.connection(), local.admin_config, local)
    finally:
        local.stop()


@pytest.fixture(scope="session")
def kafka_admin(kafka: SessionKafka) -> KafkaConnection:
    """The platform admin's connection (a super user): topics, ACLs, SCRAM users."""
    return kafka.admin


@pytest.fixture
def as_kafka_admin(kafka: SessionKafka, monkeypatch: pytest.MonkeyPatch) -> KafkaConnection:
    """In-process `jcu` verbs of this test connect as the platform admin."""
    monkeypatch.setenv(CONFIG_ENV, str(kafka.admin_file))
    return kafka.admin


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: SessionKafka) -> str:
    """The cluster's address (connecting takes a `KafkaConnection`: `kafka_admin`, or an
    organisation's from `world.kafka(org)`)."""
    return kafka.bootstrap


@pytest.fixture
def jcu_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated JCU_HOME (keystore, state) for one test."""
    home = tmp_path / "jcu-home"
    home.mkdir()
    monkeypatch.setenv("JCU_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def world(kafka: SessionKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The federation on the secured cluster: a home per organisation (its own keys and
    Kafka principal), the authority's home, the ACLs from the registry, every contract topic."""
    yield from make_world(kafka.admin, tmp_path_factory, cluster=kafka.local)
