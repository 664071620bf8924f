"""One Kafka client configuration, from the home's client file and the environment."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from broker import config
from broker.errors import ConfigError
from broker.kafka.connection import (
    KafkaConnection,
    client_file_text,
    load_connection,
    read_client_file,
)
from broker.kafka.tls import LocalCA


def _file(home: Path, text: str, mode: int = 0o600) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "kafka.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_defaults_are_plaintext_on_the_local_port(tmp_path: Path) -> None:
    conn = load_connection(tmp_path, {})
    assert (conn.bootstrap, conn.security_protocol, conn.principal) == (
        "127.0.0.1:9092",
        "PLAINTEXT",
        None,
    )
    assert conn.client_options() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_the_home_file_then_the_environment(tmp_path: Path) -> None:
    ca = LocalCA.open_or_create(tmp_path / "ca")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "ca.pem").write_bytes(ca.cert_file.read_bytes())
    (tmp_path / "home" / "pw").write_text("s3cret-from-a-file\n")
    (tmp_path / "home" / "pw").chmod(0o600)
    _file(
        tmp_path / "home",
        'bootstrap = "k1:9093,k2:9093"\nsecurity_protocol = "SASL_SSL"\n'
        'username = "cert-eu"\npassword_file = "pw"\nca_file = "ca.pem"\n',
        mode=0o644,  # no secret inside: may be readable
    )
    conn = config.load({"JCU_HOME": str(tmp_path / "home")}).kafka
    assert conn.principal == "User:cert-eu" and conn.sasl_mechanism == "SCRAM-SHA-512"
    assert conn.password == "s3cret-from-a-file"
    assert conn.ca_file == tmp_path / "home" / "ca.pem"
    options = conn.client_options()
    assert options["sasl_plain_password"] == "s3cret-from-a-file"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert conn.librdkafka_config()["ssl.ca.location"] == str(tmp_path / "home" / "ca.pem")
    # The environment wins over the file.
    env = {
        "JCU_HOME": str(tmp_path / "home"),
        "KAFKA_BOOTSTRAP": "k3:9093",
        "JCU_KAFKA_USERNAME": "auditor",
        "JCU_KAFKA_PASSWORD": "another",
    }
    other = config.load(env).kafka
    assert (other.bootstrap, other.username, other.password) == ("k3:9093", "auditor", "another")
    assert "environment" in other.source


def test_secrets_never_in_repr_or_description(tmp_path: Path) -> None:
    conn = KafkaConnection(
        "k:9093", "SASL_SSL", "SCRAM-SHA-512", "enisa", "hunter2-hunter2", source="test"
    )
    assert "hunter2" not in repr(conn) and "hunter2" not in conn.describe()
    assert "enisa" in conn.describe()


def test_a_file_with_a_password_must_be_private(tmp_path: Path) -> None:
    _file(
        tmp_path,
        'security_protocol = "SASL_SSL"\nusername = "x"\npassword = "p"\n',
        mode=0o644,
    )
    with pytest.raises(ConfigError, match="chmod 600"):
        load_connection(tmp_path, {})


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('security_protocol = "SASL_SSL"\n', "username and a password"),
        ('security_protocol = "TLS"\n', "not one of"),
        ('colour = "blue"\n', "unknown key"),
        ('cert_file = "c.pem"\nsecurity_protocol = "SSL"\n', "needs its key"),
        ('security_protocol = "SASL_SSL"\nsasl_mechanism = "GSSAPI"\n', "SASL mechanism"),
        ("bootstrap = [1]\n", "string"),
        ("bootstrap = \n", "not valid TOML"),
    ],
)
def test_bad_client_files_say_what_is_wrong(tmp_path: Path, text: str, error: str) -> None:
    _file(tmp_path, text)
    with pytest.raises(ConfigError, match=error):
        load_connection(tmp_path, {})


def test_client_file_round_trip(tmp_path: Path) -> None:
    conn = KafkaConnection(
        "k:9093", "SASL_SSL", "SCRAM-SHA-512", "eda", 'pa"ss\\word', ca_file=tmp_path / "ca.pem"
    )
    path = _file(tmp_path, client_file_text(conn))
    back = read_client_file(path)
    assert (back.username, back.password, back.ca_file) == ("eda", 'pa"ss\\word', conn.ca_file)
