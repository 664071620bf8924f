"""A real Apache Kafka cluster (KRaft) on loopback: one node, or three, with its walls up.

For development, the demo and tests on machines without Docker. Each node is
the official distribution's code (jars from Maven Central, see `_maven`), run
with `java -cp` as a combined broker and controller (three nodes: a quorum of
three voters); storage is formatted with Kafka's own StorageTool.

Secured by default, as a shared cluster must be:

- clients connect over SASL_SSL with SCRAM-SHA-512 (`CLIENT` listener), and
  optionally over TLS with a client certificate (`MTLS` listener, `mtls_port`);
- brokers and controllers talk over TLS with client certificates (`INTERNAL`,
  `CONTROLLER`); every certificate comes from a CA made for this cluster
  (`tls.LocalCA`), and the certificate's common name is the principal;
- KRaft's `StandardAuthorizer` with `allow.everyone.if.no.acl.found=false`:
  nothing is allowed that an ACL does not allow, except to the super users
  `User:kafka-broker` (the nodes) and `User:admin` (the platform admin);
- the admin's SCRAM credential is written when storage is formatted (Kafka's
  KIP-900); its password is generated, passed to the StorageTool in a Java
  argument file (never on a command line) and kept in `admin.toml` (0600),
  the admin's Kafka client file.

State lives in one data directory:

    <data>/cluster.json        cluster id, size, ports, whether secured
    <data>/admin.toml          the platform admin's Kafka client file (0600)
    <data>/tls/                the CA and the brokers' certificate (keys 0600)
    <data>/node-<id>/          server.properties, log4j2.properties, server.log,
                               stdout.log, kafka.json (pid), logs/ (log.dirs)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from broker.errors import ConfigError, KafkaRuntimeError
from broker.files import private_dir, write_private
from broker.kafka._maven import kafka_classpath
from broker.kafka.connection import (
    KafkaConnection,
    client_file_text,
    read_client_file,
)
from broker.kafka.tls import DEFAULT_HOSTS, LocalCA

KAFKA_VERSION = "4.1.1"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
HOST = "127.0.0.1"
ADMIN_USER = "admin"
BROKER_PRINCIPAL = "kafka-broker"
SCRAM = "SCRAM-SHA-512"


@dataclass(frozen=True, slots=True)
class NodePorts:
    """The ports of one node: clients, controllers, brokers among themselves, mTLS clients."""

    node_id: int
    client: int
    controller: int
    internal: int
    mtls: int | None = None


@dataclass(frozen=True, slots=True)
class KafkaStatus:
    running: bool
    bootstrap: str | None
    pid: int | None
    data_dir: str
    version: str | None = None
    detail: str = ""
    #: pid of each running node, by node id
    pids: dict[int, int] = field(default_factory=dict)
    brokers: int = 1
    secure: bool = True
    #: the platform admin's Kafka client file (secured clusters)
    admin_config: str | None = None

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


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class LocalKafka:
    """Lifecycle of a local cluster of `brokers` nodes. `start()` is idempotent; `stop()` is
    clean; `kill_node`/`start_node` serve fault tests (SIGKILL of one node's own pid)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 9092,
        controller_port: int | None = None,
        internal_port: int | None = None,
        mtls_port: int | None = None,
        brokers: int = 1,
        cache_dir: Path,
        version: str = KAFKA_VERSION,
        heap: str | None = None,
        secure: bool = True,
    ) -> None:
        if brokers not in (1, 3):
            raise ConfigError("a local cluster has 1 or 3 brokers")
        self.data_dir = data_dir
        self.brokers = brokers
        self.cache_dir = cache_dir
        self.version = version
        self.heap = heap or ("768m" if brokers == 1 else "512m")
        self.secure = secure
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        saved = self._read_cluster()
        if saved is not None:
            # A formatted cluster keeps its layout: its ports are in its metadata.
            self.brokers = int(saved["brokers"])
            self.secure = bool(saved["secure"])
            self.nodes = [NodePorts(**p) for p in saved["ports"]]
        else:
            controller = controller_port or port + brokers
            internal = internal_port or controller + brokers
            self.nodes = [
                NodePorts(
                    node_id=i + 1,
                    client=port + i,
                    controller=controller + i,
                    internal=internal + i,
                    mtls=None if mtls_port is None else mtls_port + i,
                )
                for i in range(brokers)
            ]

    # -- layout -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.nodes[0].client

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{HOST}:{n.client}" for n in self.nodes)

    @property
    def mtls_bootstrap(self) -> str | None:
        if self.nodes[0].mtls is None:
            return None
        return ",".join(f"{HOST}:{n.mtls}" for n in self.nodes)

    @property
    def admin_config(self) -> Path:
        return self.data_dir / "admin.toml"

    @property
    def ca(self) -> LocalCA:
        return LocalCA(self.data_dir / "tls")

    @property
    def log_file(self) -> Path:
        return self.node_dir(1) / "server.log"

    def node_dir(self, node_id: int) -> Path:
        return self.data_dir / f"node-{node_id}"

    def _node(self, node_id: int) -> NodePorts:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise ConfigError(f"no node {node_id} in this cluster of {self.brokers}")

    def _read_cluster(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.data_dir / "cluster.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def connection(self) -> KafkaConnection:
        """The platform admin's connection (a super user): topics, ACLs, SCRAM users."""
        if not self.secure:
            return KafkaConnection.plaintext(self.bootstrap)
        if not self.admin_config.exists():
            raise KafkaRuntimeError(
                f"{self.admin_config} is missing: this cluster was not started here yet"
            )
        return read_client_file(self.admin_config)

    # -- status -----------------------------------------------------------------

    def _node_pid(self, node_id: int) -> int | None:
        proc = self._procs.get(node_id)
        if proc is not None and proc.poll() is None:
            return proc.pid
        try:
            state = json.loads((self.node_dir(node_id) / "kafka.json").read_text())
            pid = int(state["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return pid if _pid_alive(pid) and _is_kafka(pid) else None

    def status(self) -> KafkaStatus:
        pids = {n.node_id: pid for n in self.nodes if (pid := self._node_pid(n.node_id))}
        common: dict[str, Any] = {
            "data_dir": str(self.data_dir),
            "pids": pids,
            "brokers": self.brokers,
            "secure": self.secure,
            "admin_config": str(self.admin_config) if self.secure else None,
        }
        if not pids:
            detail = "not started" if self._read_cluster() is None else "not running"
            return KafkaStatus(False, None, None, detail=detail, **common)
        first = next(iter(pids.values()))
        listening = [n for n in self.nodes if n.node_id in pids and _port_open(n.client)]
        if len(listening) < self.brokers:
            return KafkaStatus(
                False,
                self.bootstrap,
                first,
                version=self.version,
                detail=f"{len(listening)} of {self.brokers} nodes listening",
                **common,
            )
        return KafkaStatus(True, self.bootstrap, first, version=self.version, **common)

    # -- configuration ------------------------------------------------------------

    def _voters(self) -> str:
        return ",".join(f"{n.node_id}@{HOST}:{n.controller}" for n in self.nodes)

    def _write_config(self, node: NodePorts) -> Path:
        home = self.node_dir(node.node_id)
        private_dir(home)
        replicas = str(min(3, self.brokers))
        min_isr = "2" if self.brokers >= 3 else "1"
        settings: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": self._voters(),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "log.dirs": str(home / "logs"),
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "unclean.leader.election.enable": "false",
            # Topics are a contract: created by the platform admin, never implicitly.
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
        }
        listeners = [
            ("CLIENT", node.client),
            ("INTERNAL", node.internal),
        ]
        if node.mtls is not None:
            listeners.append(("MTLS", node.mtls))
        settings["listeners"] = ",".join(
            [f"{name}://{HOST}:{p}" for name, p in listeners]
            + [f"CONTROLLER://{HOST}:{node.controller}"]
        )
        settings["advertised.listeners"] = ",".join(f"{n}://{HOST}:{p}" for n, p in listeners)
        if self.secure:
            tls = self.data_dir / "tls"
            settings.update(
                {
                    "listener.security.protocol.map": (
                        "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL,MTLS:SSL"
                    ),
                    "sasl.enabled.mechanisms": SCRAM,
                    "listener.name.client.sasl.enabled.mechanisms": SCRAM,
                    f"listener.name.client.{SCRAM.lower()}.sasl.jaas.config": (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                    ),
                    "ssl.keystore.type": "PEM",
                    "ssl.keystore.location": str(tls / "broker.pem"),
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(tls / "ca.pem"),
                    "listener.name.internal.ssl.client.auth": "required",
                    "listener.name.controller.ssl.client.auth": "required",
                    "listener.name.mtls.ssl.client.auth": "required",
                    # The certificate's common name is the principal: CN=enisa is User:enisa.
                    "ssl.principal.mapping.rules": "RULE:^.*CN=([^,]+).*$/$1/,DEFAULT",
                    "authorizer.class.name": (
                        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
                    ),
                    "allow.everyone.if.no.acl.found": "false",
                    "super.users": f"User:{BROKER_PRINCIPAL};User:{ADMIN_USER}",
                }
            )
        else:
            settings["listener.security.protocol.map"] = (
                "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT,MTLS:PLAINTEXT"
            )
        props = home / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        (home / "log4j2.properties").write_text(
            "status = error\n"
            "appender.file.type = File\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {home / 'server.log'}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
        )
        return props

    def _prepare(self) -> None:
        """Once per data directory: the CA and broker certificate, the admin's credential,
        and the cluster's layout; every start rewrites the nodes' configuration."""
        private_dir(self.data_dir)
        if self.secure:
            ca = LocalCA.open_or_create(self.data_dir / "tls")
            if not (self.data_dir / "tls" / "broker.pem").exists():
                ca.issue(
                    BROKER_PRINCIPAL,
                    self.data_dir / "tls" / "broker",
                    hosts=DEFAULT_HOSTS,
                    server=True,
                )
            if not self.admin_config.exists():
                admin = KafkaConnection(
                    bootstrap=self.bootstrap,
                    security_protocol="SASL_SSL",
                    sasl_mechanism=SCRAM,
                    username=ADMIN_USER,
                    password=secrets.token_urlsafe(32),
                    ca_file=ca.cert_file,
                    source=str(self.admin_config),
                )
                write_private(self.admin_config, client_file_text(admin).encode())
        if self._read_cluster() is None:
            (self.data_dir / "cluster.json").write_text(
                json.dumps(
                    {
                        "cluster_id": _cluster_id(),
                        "brokers": self.brokers,
                        "secure": self.secure,
                        "ports": [asdict(n) for n in self.nodes],
                    },
                    indent=2,
                )
            )

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        if java_home and (Path(java_home) / "bin" / "java").exists():
            return str(Path(java_home) / "bin" / "java")
        java = shutil.which("java")
        if java is None:
            raise KafkaRuntimeError("Java is not on PATH: Kafka needs a JDK/JRE 17 or newer")
        return java

    def _format(self, java: str, lib: Path, node: NodePorts, props: Path) -> None:
        home = self.node_dir(node.node_id)
        if (home / "logs" / "meta.properties").exists():
            return
        cluster = self._read_cluster()
        assert cluster is not None  # noqa: S101 - narrows for mypy: start() wrote the cluster id
        args = [
            "-cp",
            f"{lib}/*",
            STORAGE_TOOL,
            "format",
            # One argument: a cluster id may start with "-", which would read as an option.
            f"--cluster-id={cluster['cluster_id']}",
            "-c",
            str(props),
        ]
        if self.secure:
            password = self.connection().password
            args += ["--add-scram", f"{SCRAM}=[name={ADMIN_USER},password={password}]"]
        # A Java argument file: the admin's password never appears in a process's arguments.
        if any('"' in a or "\\" in a for a in args):
            raise KafkaRuntimeError(f"paths under {self.data_dir} may not contain quotes or \\")
        argfile = home / ".format.args"
        write_private(argfile, "".join(f'"{a}"\n' for a in args).encode())
        try:
            proc = subprocess.run(  # noqa: S603 - argv list, no shell: our java and argfile
                [java, f"@{argfile}"], capture_output=True, text=True, check=False
            )
        finally:
            argfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            out = (proc.stderr or proc.stdout).strip()[-800:]
            if self.secure:
                out = out.replace(str(self.connection().password), "[redacted]")
            raise KafkaRuntimeError(f"formatting Kafka storage failed: {out}")

    # -- lifecycle ----------------------------------------------------------------

    async def start(self, timeout: float = 120.0) -> KafkaStatus:
        """Start every node that does not run; return once the cluster answers with all of
        them as live brokers."""
        current = self.status()
        if current.running:
            await self._wait_ready(timeout)
            return current
        self._prepare()
        lib = kafka_classpath(self.cache_dir, self.version)
        java = self._java()
        for node in self.nodes:
            if self._node_pid(node.node_id) is None:
                self._launch(java, lib, node)
        try:
            await self._wait_ready(timeout)
        except KafkaRuntimeError:
            self.stop()
            raise
        return self.status()

    async def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        """(Re)start one node of a running cluster and wait until it is back in it."""
        node = self._node(node_id)
        if self._node_pid(node_id) is None:
            self._launch(self._java(), kafka_classpath(self.cache_dir, self.version), node)
        await self._wait_ready(timeout)

    def _launch(self, java: str, lib: Path, node: NodePorts) -> int:
        for p in (node.client, node.controller, node.internal, node.mtls):
            if p is not None and _port_open(p):
                raise KafkaRuntimeError(
                    f"port {HOST}:{p} is already in use by another program; choose --port"
                )
        props = self._write_config(node)
        self._format(java, lib, node, props)
        home = self.node_dir(node.node_id)
        cmd = [
            java,
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
            "-cp",
            f"{lib}/*",
            MAIN_CLASS,
            str(props),
        ]
        with (home / "stdout.log").open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - argv list, no shell: our java and classpath
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=home,
                start_new_session=True,
            )
        (home / "kafka.json").write_text(
            json.dumps({"pid": proc.pid, "port": node.client, "version": self.version})
        )
        self._procs[node.node_id] = proc
        return proc.pid

    async def _wait_ready(self, timeout: float) -> None:
        """Until every node runs and the cluster's metadata lists all of them as brokers."""
        deadline = time.monotonic() + timeout
        last: Exception | str | None = None
        while time.monotonic() < deadline:
            for node in self.nodes:
                proc = self._procs.get(node.node_id)
                # Our own child: poll it (right after the fork its command line is still
                # Python's, so the cmdline check of `_node_pid` would call it gone).
                gone = proc.poll() is not None if proc else self._node_pid(node.node_id) is None
                if gone:
                    _reap_all(self)
                    raise self._start_failed(node.node_id, "the node's process exited")
            if all(_port_open(n.client) for n in self.nodes):
                try:
                    live = await self._live_brokers()
                    if live >= self.brokers:
                        return
                    last = f"{live} of {self.brokers} brokers in the cluster's metadata"
                except Exception as exc:  # still coming up
                    last = exc
            await asyncio.sleep(0.5)
        raise self._start_failed(1, f"the cluster was not ready within {timeout:.0f} s ({last})")

    async def _live_brokers(self) -> int:
        from broker.kafka.clients import admin_client

        admin = admin_client(self.connection(), request_timeout_ms=5000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return len(cluster.get("brokers") or ())
        finally:
            await admin.close()

    def _start_failed(self, node_id: int, why: str) -> KafkaRuntimeError:
        home = self.node_dir(node_id)
        return KafkaRuntimeError(
            f"Kafka failed to start: {why}; last lines of {home / 'server.log'}:\n"
            f"{_tail(home / 'server.log')}\n--- {home / 'stdout.log'}:\n"
            f"{_tail(home / 'stdout.log', 10)}"
        )

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop every node cleanly (SIGTERM, then SIGKILL after `timeout`). False if none ran."""
        stopped = False
        pids = [(n.node_id, self._node_pid(n.node_id)) for n in self.nodes]
        for _, pid in pids:
            if pid is not None:
                os.killpg(pid, signal.SIGTERM)
                stopped = True
        deadline = time.monotonic() + timeout
        for node_id, pid in pids:
            if pid is None:
                (self.node_dir(node_id) / "kafka.json").unlink(missing_ok=True)
                continue
            while time.monotonic() < deadline and _pid_alive(pid):
                _reap(pid)
                time.sleep(0.2)
            self._kill(node_id, pid)
        return stopped

    def stop_node(self, node_id: int, timeout: float = 60.0) -> None:
        """Stop one node cleanly (a rolling restart's step)."""
        pid = self._node_pid(node_id)
        if pid is None:
            return
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            _reap(pid)
            time.sleep(0.2)
        self._kill(node_id, pid)

    def kill_node(self, node_id: int) -> int | None:
        """SIGKILL one node's own process (fault injection): no clean shutdown. Its pid."""
        pid = self._node_pid(node_id)
        if pid is not None:
            self._kill(node_id, pid)
        return pid

    def kill(self) -> None:
        """SIGKILL every node (fault-injection tests)."""
        for node in self.nodes:
            self.kill_node(node.node_id)

    def _kill(self, node_id: int, pid: int) -> None:
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _pid_alive(pid):
                _reap(pid)
                time.sleep(0.05)
        _reap(pid)
        proc = self._procs.pop(node_id, None)
        if proc is not None:
            proc.poll()
        (self.node_dir(node_id) / "kafka.json").unlink(missing_ok=True)


def _reap_all(local: LocalKafka) -> None:
    for node in local.nodes:
        try:
            pid = int(json.loads((local.node_dir(node.node_id) / "kafka.json").read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        _reap(pid)


def free_ports(count: int, attempts: int = 200) -> int:
    """A base port such that base .. base+count-1 are free on loopback (for test clusters).

    Below the kernel's ephemeral range: a broker restarted on its ports (a fault test)
    must not find one taken meanwhile as the local end of some client's connection."""
    low = _ephemeral_low() - count
    for _ in range(attempts):
        base = secrets.randbelow(low - 10000) + 10000
        if all(_is_free(base + i) for i in range(count)):
            return base
    raise KafkaRuntimeError(f"no {count} consecutive free ports found on {HOST}")


def _ephemeral_low() -> int:
    """The first port the kernel hands out to outgoing connections (Linux; else IANA's)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return max(int(text.split()[0]), 12000)
    except (OSError, ValueError, IndexError):
        return 32768


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True
