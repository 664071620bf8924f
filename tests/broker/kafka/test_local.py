"""`jcu kafka up | status | down` drive a real broker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.kafka.local import MAIN_CLASS, free_ports


def _jcu(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


def _listening_pid(port: int) -> int | None:
    """The pid owning a LISTEN socket on 127.0.0.1:port, from /proc (no external tools)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inode = fields[9]
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == target:
                    return int(proc.name)
        except OSError:
            continue
    return None


@pytest.mark.kafka
def test_up_status_down_lifecycle(tmp_path: Path) -> None:
    env = {**os.environ, "JCU_HOME": str(tmp_path / "home")}
    data = tmp_path / "data"
    port = free_ports(3)
    up = _jcu("kafka", "up", "--port", str(port), "--data-dir", str(data), env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == f"127.0.0.1:{port}"

        status = _jcu("kafka", "status", "--data-dir", str(data), "--json", env=env)
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert info["running"] is True and info["bootstrap"] == f"127.0.0.1:{port}"

        pid = _listening_pid(port)
        assert pid == info["pid"]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert MAIN_CLASS.encode() in cmdline

        again = _jcu("kafka", "up", "--port", str(port), "--data-dir", str(data), env=env)
        assert again.returncode == 0 and _listening_pid(port) == pid, "up must be idempotent"
        assert (data / "node-1" / "server.log").stat().st_size > 0
    finally:
        down = _jcu("kafka", "down", "--data-dir", str(data), env=env)
    assert down.returncode == 0 and "stopped" in down.stdout
    after = _jcu("kafka", "status", "--data-dir", str(data), env=env)
    assert after.returncode == 3 and "not running" in after.stdout
    assert _listening_pid(port) is None


@pytest.mark.kafka  # starts a broker of its own (Java)
def test_failed_start_shows_the_log_and_exits_nonzero(tmp_path: Path) -> None:
    """A broker that cannot start (storage formatted for another cluster layout) fails loudly."""
    env = {**os.environ, "JCU_HOME": str(tmp_path / "home")}
    data = tmp_path / "data"
    (data / "node-1" / "logs").mkdir(parents=True)
    # A meta.properties with a node id that does not match the config: Kafka refuses to start.
    (data / "node-1" / "logs" / "meta.properties").write_text(
        "version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=7\n"
        "directory.id=BBBBBBBBBBBBBBBBBBBBBB\n"
    )
    result = _jcu(
        "kafka",
        "up",
        "--port",
        str(free_ports(3)),
        "--data-dir",
        str(data),
        "--timeout",
        "60",
        env=env,
    )
    assert result.returncode == 1
    assert "Kafka failed to start" in result.stderr
    assert "last lines of" in result.stderr


def test_status_when_never_started(tmp_path: Path) -> None:
    env = {**os.environ, "JCU_HOME": str(tmp_path / "home")}
    result = _jcu("kafka", "status", "--data-dir", str(tmp_path / "nothing"), env=env)
    assert result.returncode == 3
    assert "not running" in result.stdout


@pytest.mark.kafka  # starts a broker of its own (Java)
def test_cluster_ids_that_start_with_a_dash_still_format(tmp_path: Path) -> None:
    """Kafka's ids are URL-safe base64: one in 64 starts with '-'; formatting must not care."""
    import asyncio
    from unittest import mock

    from broker import config
    from broker.kafka import local as local_mod

    kafka = local_mod.LocalKafka(
        tmp_path / "data", port=free_ports(3), cache_dir=config.load({}).kafka_cache
    )
    with mock.patch.object(local_mod, "_cluster_id", return_value="-AEBAQEBAQEBAQEBAQEBAQ"):
        asyncio.run(kafka.start(timeout=90))
    try:
        assert kafka.status().running
    finally:
        kafka.stop()
