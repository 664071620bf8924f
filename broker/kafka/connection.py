"""How every Kafka client of this process connects: address, TLS, and who it is.

One `KafkaConnection` is built from configuration (`load_connection`) and
handed to every producer, consumer and admin client, so a node, the
authority, an auditor or the platform admin each talk to the cluster as
their own Kafka principal. Sources, later ones winning:

1. the client file `$JCU_HOME/kafka.toml` (or the file `JCU_KAFKA_CONFIG`
   names): TOML, keys as below, relative paths from the file's directory;
2. the environment: `KAFKA_BOOTSTRAP`, `JCU_KAFKA_SECURITY_PROTOCOL`,
   `JCU_KAFKA_SASL_MECHANISM`, `JCU_KAFKA_USERNAME`, `JCU_KAFKA_PASSWORD`,
   `JCU_KAFKA_PASSWORD_FILE`, `JCU_KAFKA_CA_FILE`, `JCU_KAFKA_CERT_FILE`,
   `JCU_KAFKA_KEY_FILE`.

```toml
bootstrap = "kafka-1.example:9093,kafka-2.example:9093"
security_protocol = "SASL_SSL"   # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
sasl_mechanism = "SCRAM-SHA-512" # or SCRAM-SHA-256, PLAIN
username = "cert-eu"
password_file = "kafka.password" # or password = "..." in this file (then mode 0600)
ca_file = "kafka-ca.pem"         # the CA that signed the brokers' certificates
# cert_file = "client.crt"       # mTLS instead of (or besides) SASL
# key_file = "client.key"
```

A file or password file that holds a secret must not be readable by group or
others. The password is never part of a repr, a log line or an error.
"""

from __future__ import annotations

import os
import ssl
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from broker.errors import ConfigError

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
CLIENT_FILE = "kafka.toml"
CONFIG_ENV = "JCU_KAFKA_CONFIG"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_KEYS = (
    "bootstrap",
    "security_protocol",
    "sasl_mechanism",
    "username",
    "password",
    "password_file",
    "ca_file",
    "cert_file",
    "key_file",
)
_ENV = {
    "bootstrap": "KAFKA_BOOTSTRAP",
    "security_protocol": "JCU_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "JCU_KAFKA_SASL_MECHANISM",
    "username": "JCU_KAFKA_USERNAME",
    "password": "JCU_KAFKA_PASSWORD",
    "password_file": "JCU_KAFKA_PASSWORD_FILE",
    "ca_file": "JCU_KAFKA_CA_FILE",
    "cert_file": "JCU_KAFKA_CERT_FILE",
    "key_file": "JCU_KAFKA_KEY_FILE",
}


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where the cluster is and how this process proves who it is. Immutable; share freely."""

    bootstrap: str = DEFAULT_BOOTSTRAP
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: where the settings came from, for messages ("environment", a file path)
    source: str = "defaults"

    def __post_init__(self) -> None:
        if self.security_protocol not in PROTOCOLS:
            raise ConfigError(
                f"Kafka security protocol {self.security_protocol!r} ({self.source}) is not one "
                f"of {', '.join(PROTOCOLS)}"
            )
        if self.sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise ConfigError(
                    f"{self.security_protocol} needs a SASL mechanism ({', '.join(MECHANISMS)}); "
                    f"got {self.sasl_mechanism!r} ({self.source})"
                )
            if not self.username or not self.password:
                raise ConfigError(
                    f"{self.security_protocol} needs a username and a password ({self.source}): "
                    "set username and password_file in kafka.toml, or JCU_KAFKA_USERNAME and "
                    "JCU_KAFKA_PASSWORD_FILE"
                )
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError(
                f"a client certificate needs its key and the other way round ({self.source}): "
                "set both cert_file and key_file"
            )
        if not self.bootstrap.strip():
            raise ConfigError(f"no Kafka bootstrap address ({self.source})")

    @classmethod
    def plaintext(cls, bootstrap: str) -> KafkaConnection:
        """An unauthenticated connection (a development broker without walls)."""
        return cls(bootstrap=bootstrap, source="plaintext")

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def principal(self) -> str | None:
        """The Kafka principal this connection authenticates as, when it is known here."""
        if self.sasl and self.username:
            return f"User:{self.username}"
        return None

    def describe(self) -> str:
        """One line for messages and logs: never the password."""
        who = f" as {self.username}" if self.sasl else ""
        cert = " with a client certificate" if self.cert_file else ""
        return f"{self.bootstrap} ({self.security_protocol}{who}{cert})"

    def with_bootstrap(self, bootstrap: str) -> KafkaConnection:
        return replace(self, bootstrap=bootstrap)

    def as_user(self, username: str, password: str, *, source: str = "") -> KafkaConnection:
        """The same cluster and TLS settings, another SASL principal."""
        return replace(self, username=username, password=password, source=source or self.source)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A TLS context that verifies the brokers against `ca_file` (or the system's CAs)."""
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            if self.cert_file and self.key_file:
                context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the Kafka TLS files ({self.source}): {exc}") from None
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password
        return options

    def librdkafka_config(self) -> dict[str, str]:
        """The same settings for librdkafka (confluent-kafka's admin client)."""
        conf = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
        }
        if self.ca_file:
            conf["ssl.ca.location"] = str(self.ca_file)
        if self.cert_file and self.key_file:
            conf["ssl.certificate.location"] = str(self.cert_file)
            conf["ssl.key.location"] = str(self.key_file)
        if self.sasl:
            conf["sasl.mechanism"] = str(self.sasl_mechanism)
            conf["sasl.username"] = str(self.username)
            conf["sasl.password"] = str(self.password)
        return conf


def _private_text(path: Path, what: str) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{what} {path} may be read by group or others (mode {mode:04o}); "
                f"run `chmod 600 {path}`"
            )
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def _read_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the Kafka client file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_KEYS)}")
    if any(not isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path}: every value is a string")
    if "password" in data:
        _private_text(path, "the Kafka client file")  # holds a secret: owner only
    base = path.parent
    out = {k: str(v) for k, v in data.items()}
    for key in ("password_file", "ca_file", "cert_file", "key_file"):
        if key in out:
            out[key] = str((base / out[key]).expanduser())
    return out


def client_file(home: Path, env: Mapping[str, str] | None = None) -> Path | None:
    """The client file in use: `JCU_KAFKA_CONFIG`, else `$JCU_HOME/kafka.toml` if it exists."""
    e = os.environ if env is None else env
    if e.get(CONFIG_ENV):
        path = Path(e[CONFIG_ENV]).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={path} is not a file")
        return path
    default = home / CLIENT_FILE
    return default if default.is_file() else None


def load_connection(home: Path, env: Mapping[str, str] | None = None) -> KafkaConnection:
    """The connection of the process whose home is `home`, from its client file and `env`."""
    e = os.environ if env is None else env
    values: dict[str, str] = {}
    sources: list[str] = []
    path = client_file(home, e)
    if path is not None:
        values.update(_read_file(path))
        sources.append(str(path))
    from_env = {k: e[name] for k, name in _ENV.items() if e.get(name)}
    if from_env:
        values.update(from_env)
        sources.append("environment")
    source = " + ".join(sources) or "defaults"
    password = values.get("password")
    if password is None and values.get("password_file"):
        password = _private_text(Path(values["password_file"]), "the Kafka password file")
        password = password.rstrip("\r\n")
        if not password:
            raise ConfigError(f"the Kafka password file {values['password_file']} is empty")
    protocol = values.get("security_protocol", "PLAINTEXT").upper()
    mechanism = values.get("sasl_mechanism", "SCRAM-SHA-512" if "SASL" in protocol else None)

    def path_of(key: str) -> Path | None:
        return Path(values[key]).expanduser() if values.get(key) else None

    return KafkaConnection(
        bootstrap=values.get("bootstrap", DEFAULT_BOOTSTRAP),
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        username=values.get("username"),
        password=password,
        ca_file=path_of("ca_file"),
        cert_file=path_of("cert_file"),
        key_file=path_of("key_file"),
        source=source,
    )


def client_file_text(connection: KafkaConnection, *, ca_file: str | None = None) -> str:
    """A client file for `connection`, password inline (write it 0600)."""

    def q(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [
        "# jcu Kafka client configuration: who this home is on the cluster. Keep it 0600.",
        f"bootstrap = {q(connection.bootstrap)}",
        f"security_protocol = {q(connection.security_protocol)}",
    ]
    if connection.sasl:
        lines += [
            f"sasl_mechanism = {q(str(connection.sasl_mechanism))}",
            f"username = {q(str(connection.username))}",
            f"password = {q(str(connection.password))}",
        ]
    ca = ca_file or (str(connection.ca_file) if connection.ca_file else None)
    if ca:
        lines.append(f"ca_file = {q(ca)}")
    if connection.cert_file and connection.key_file:
        lines += [
            f"cert_file = {q(str(connection.cert_file))}",
            f"key_file = {q(str(connection.key_file))}",
        ]
    return "\n".join(lines) + "\n"


def read_client_file(path: Path) -> KafkaConnection:
    """The connection a client file describes, on its own (no environment)."""
    return load_connection(path.parent, {CONFIG_ENV: str(path)})
