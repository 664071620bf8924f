"""Without a reachable Kafka, every verb that needs one says so in one line and exits 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from broker.kafka.local import free_port
from tests.world import World


@pytest.mark.parametrize(
    ("org", "argv"),
    [
        ("enisa", ["stats"]),
        ("enisa", ["subscribe", "--as", "enisa", "--once"]),
        ("soc-fr", ["receipts", "--as", "soc-fr"]),
        ("eda", ["crisis", "list"]),
        ("enisa", ["registry", "sync"]),
    ],
)
def test_unreachable_kafka_is_one_clear_line(world: World, org: str, argv: list[str]) -> None:
    env = {**world.env(org), "KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}  # nothing listens
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("jcu: error: cannot reach Kafka at 127.0.0.1:")
    assert "Traceback" not in result.stderr


def test_the_bootstrap_option_wins_over_the_environment(world: World) -> None:
    """`--bootstrap` (every verb that talks to Kafka takes it) is the address used."""
    address = f"127.0.0.1:{free_port()}"  # nothing listens; the environment names the real one
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli", "crisis", "list", "--bootstrap", address],
        env=world.env("eda"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"jcu: error: cannot reach Kafka at {address}")
