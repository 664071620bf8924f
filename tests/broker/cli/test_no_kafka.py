"""Without a reachable Kafka, every verb that needs one says so in one line and exits 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from broker.kafka.local import free_port
from tests.world import World


def _one_line_cannot_reach(argv: list[str], env: dict[str, str], address: str) -> None:
    """`jcu ARGV` exits 1 with one line saying it cannot reach Kafka at `address`."""
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
    assert lines[0].startswith(f"jcu: error: cannot reach Kafka at {address}")
    assert "Traceback" not in result.stderr


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
    _one_line_cannot_reach(argv, env, "127.0.0.1:")


def test_the_bootstrap_option_wins_over_the_environment(world: World) -> None:
    """`--bootstrap` (every verb that talks to Kafka takes it) is the address used."""
    address = f"127.0.0.1:{free_port()}"  # nothing listens; the environment names the real one
    _one_line_cannot_reach(["crisis", "list", "--bootstrap", address], world.env("eda"), address)
