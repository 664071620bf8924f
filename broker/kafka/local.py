"""A real, single-node Apache Kafka (KRaft, combined broker+controller) on loopback.

For development, the demo and tests on machines without Docker. The broker is
the official distribution's code (jars from Maven Central, see `_maven`), run
with `java -cp`; its storage is formatted with Kafka's own StorageTool. State
lives in one data directory:

    <data>/server.properties   generated config
    <data>/log4j2.properties   logging config
    <data>/server.log          the broker's log
    <data>/stdout.log          the JVM's own output
    <data>/kafka.json          pid and ports of the running broker
    <data>/logs/               Kafka's log.dirs (topic data, KRaft metadata)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from broker.errors import KafkaRuntimeError
from broker.kafka._maven import kafka_classpath

KAFKA_VERSION = "4.1.1"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class KafkaStatus:
    running: bool
    bootstrap: str | None
    pid: int | None
    data_dir: str
    version: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child not yet reaped) is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _is_kafka(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return MAIN_CLASS.encode() in cmdline


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


class LocalKafka:
    """Lifecycle of one local broker. `start()` is idempotent; `stop()` is clean."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 9092,
        controller_port: int | None = None,
        cache_dir: Path,
        version: str = KAFKA_VERSION,
        heap: str = "768m",
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.controller_port = controller_port or port + 1
        self.cache_dir = cache_dir
        self.version = version
        self.heap = heap

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def _state_file(self) -> Path:
        return self.data_dir / "kafka.json"

    def _read_state(self) -> dict[str, object] | None:
        try:
            data = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def status(self) -> KafkaStatus:
        state = self._read_state()
        if not state:
            return KafkaStatus(False, None, None, str(self.data_dir), detail="not started")
        pid = int(str(state["pid"]))
        bootstrap = f"{HOST}:{state['port']}"
        if not (_pid_alive(pid) and _is_kafka(pid)):
            return KafkaStatus(
                False, None, None, str(self.data_dir), detail="not running (stale state)"
            )
        if not _port_open(int(str(state["port"]))):
            return KafkaStatus(
                False,
                bootstrap,
                pid,
                str(self.data_dir),
                str(state.get("version")),
                detail="process alive but not listening yet",
            )
        return KafkaStatus(True, bootstrap, pid, str(self.data_dir), str(state.get("version")))

    def _write_config(self) -> Path:
        props = self.data_dir / "server.properties"
        logs = self.data_dir / "logs"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(logs),
            # Single node: internal topics cannot be replicated.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Topics are a contract: created by `jcu init`, never implicitly.
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
        }
        props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        log4j = self.data_dir / "log4j2.properties"
        log4j.write_text(
            "status = error\n"
            "appender.file.type = File\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {self.log_file}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
        )
        return props

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        if java_home and (Path(java_home) / "bin" / "java").exists():
            return str(Path(java_home) / "bin" / "java")
        java = shutil.which("java")
        if java is None:
            raise KafkaRuntimeError("Java is not on PATH: Kafka needs a JDK/JRE 17 or newer")
        return java

    def _format(self, java: str, lib: Path, props: Path) -> None:
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        cmd = [
            java,
            "-cp",
            f"{lib}/*",
            STORAGE_TOOL,
            "format",
            # One argument: a cluster id may start with "-", which would read as an option.
            f"--cluster-id={_cluster_id()}",
            "-c",
            str(props),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise KafkaRuntimeError(
                f"formatting Kafka storage failed: {(proc.stderr or proc.stdout).strip()[-800:]}"
            )

    async def start(self, timeout: float = 90.0) -> KafkaStatus:
        """Start the broker unless it runs; return once it answers a metadata request."""
        current = self.status()
        if current.running:
            await self._wait_metadata(current.bootstrap or self.bootstrap, timeout)
            return current
        if current.pid is not None:
            # Alive but not listening yet: an earlier start still coming up.
            return await self._await_ready(current.pid, timeout)
        for p in (self.port, self.controller_port):
            if _port_open(p):
                raise KafkaRuntimeError(
                    f"port {HOST}:{p} is already in use by another program; choose --port"
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lib = kafka_classpath(self.cache_dir, self.version)
        java = self._java()
        props = self._write_config()
        self._format(java, lib, props)
        cmd = [
            java,
            f"-Xmx{self.heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{lib}/*",
            MAIN_CLASS,
            str(props),
        ]
        with (self.data_dir / "stdout.log").open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self._state_file.write_text(
            json.dumps(
                {
                    "pid": proc.pid,
                    "port": self.port,
                    "controller_port": self.controller_port,
                    "version": self.version,
                }
            )
        )
        return await self._await_ready(proc.pid, timeout, proc)

    async def _await_ready(
        self, pid: int, timeout: float, proc: subprocess.Popen[bytes] | None = None
    ) -> KafkaStatus:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise self._start_failed(f"the broker exited with code {proc.returncode}")
            if proc is None and not _pid_alive(pid):
                raise self._start_failed("the broker process exited")
            if _port_open(self.port):
                await self._wait_metadata(self.bootstrap, max(5.0, deadline - time.monotonic()))
                return self.status()
            await asyncio.sleep(0.25)
        self.stop()
        raise self._start_failed(f"the broker did not answer within {timeout:.0f} s")

    def _start_failed(self, why: str) -> KafkaRuntimeError:
        self._state_file.unlink(missing_ok=True)
        return KafkaRuntimeError(
            f"Kafka failed to start: {why}; last lines of {self.log_file}:\n"
            f"{_tail(self.log_file)}\n--- {self.data_dir / 'stdout.log'}:\n"
            f"{_tail(self.data_dir / 'stdout.log', 10)}"
        )

    async def _wait_metadata(self, bootstrap: str, timeout: float) -> None:
        """Wait until the broker answers a metadata request with itself as a live broker."""
        from aiokafka.admin import AIOKafkaAdminClient

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
            try:
                await admin.start()
                cluster = await admin.describe_cluster()
                if cluster.get("brokers"):
                    return
            except Exception as exc:  # the broker is still coming up
                last = exc
            finally:
                await admin.close()
            await asyncio.sleep(0.5)
        raise KafkaRuntimeError(f"broker at {bootstrap} did not answer a metadata request: {last}")

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the broker cleanly (SIGTERM, then SIGKILL after `timeout`). False if not running."""
        state = self._read_state()
        if not state:
            return False
        pid = int(str(state["pid"]))
        if not (_pid_alive(pid) and _is_kafka(pid)):
            self._state_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            _reap(pid)
            time.sleep(0.2)
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
            while _pid_alive(pid):
                _reap(pid)
                time.sleep(0.1)
        _reap(pid)
        self._state_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL the broker (fault-injection tests): no clean shutdown."""
        state = self._read_state()
        if state:
            pid = int(str(state["pid"]))
            if _pid_alive(pid) and _is_kafka(pid):
                os.killpg(pid, signal.SIGKILL)
                while _pid_alive(pid):
                    _reap(pid)
                    time.sleep(0.05)
            self._state_file.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
