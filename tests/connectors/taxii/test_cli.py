"""`jcu taxii passwd | collections | serve` through the real entry point."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from taxii2client.v21 import Server, as_pages

from broker.trust.node import NodeHome
from connectors.taxii import TaxiiStore, collection_id_for, store_path
from tests.cli import run
from tests.connectors.taxii.conftest import TOPIC, indicator

PASSWORD = "a long enough taxii passphrase"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cert-eu's node: TAXII serves what the node's own organisation received."""
    NodeHome.create(tmp_path, "cert-eu")
    monkeypatch.setenv("JCU_HOME", str(tmp_path))
    return tmp_path


def test_passwd_reads_stdin_and_stores_only_a_hash(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = run(["taxii", "passwd", "cert-eu"], capsys)
    assert code == 0, err
    raw = (home / "taxii-users.json").read_text()
    assert PASSWORD not in raw and PASSWORD not in out + err
    assert set(json.loads(raw)["users"]) == {"cert-eu"}


def test_passwd_from_an_environment_variable(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JCU_TAXII_PASSWORD", PASSWORD)
    code, _, err = run(["taxii", "passwd", "--from-env", "JCU_TAXII_PASSWORD"], capsys)
    assert code == 0, err
    assert "cert-eu" in json.loads((home / "taxii-users.json").read_text())["users"]


def test_passwd_says_what_it_did_as_json(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JCU_TAXII_PASSWORD", PASSWORD)
    argv = ["taxii", "passwd", "--from-env", "JCU_TAXII_PASSWORD", "--json"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    done = json.loads(out)
    assert done == {"participant": "cert-eu", "users_file": str(home / "taxii-users.json")}
    assert PASSWORD not in out + err


def test_passwd_for_another_participant_is_one_line(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = run(["taxii", "passwd", "nobody"], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "this node is cert-eu" in err
    assert not (home / "taxii-users.json").exists()


def test_serve_without_a_password_says_what_to_do(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["taxii", "serve", "--as", "cert-eu"], capsys)
    assert code == 1
    assert err.count("\n") == 1 and "jcu taxii passwd cert-eu" in err


def test_collections_lists_the_streams_received(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fill() -> None:
        async with TaxiiStore(store_path(home, "cert-eu"), "cert-eu") as store:
            await store.deliver(TOPIC, [indicator(1)])

    asyncio.run(fill())
    code, out, _ = run(["taxii", "collections", "--as", "cert-eu", "--json"], capsys)
    assert code == 0
    assert json.loads(out) == [
        {"id": collection_id_for(TOPIC), "title": "Civilian community: indicators", "topic": TOPIC}
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        # Its own trust anchor: OpenSSL trusts a self-signed leaf only if it is a CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("tls", [False, True], ids=["loopback-http", "https"])
def test_serve_runs_a_taxii_server_for_the_participant(
    home: Path, tls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets these override a session's own `verify` (taxii2-client sets that).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    async def fill() -> None:
        async with TaxiiStore(store_path(home, "cert-eu"), "cert-eu") as store:
            await store.deliver(TOPIC, [indicator(n) for n in range(1, 6)])

    asyncio.run(fill())
    env = {**os.environ, "JCU_HOME": str(home), "JCU_TAXII_PASSWORD": PASSWORD}
    jcu = [sys.executable, "-m", "broker.cli"]
    subprocess.run(
        [*jcu, "taxii", "passwd", "cert-eu", "--from-env", "JCU_TAXII_PASSWORD"],
        env=env,
        check=True,
        capture_output=True,
    )
    port = _free_port()
    args = [*jcu, "taxii", "serve", "--as", "cert-eu", "--port", str(port)]
    verify: bool | str = True
    if tls:
        cert, key = _self_signed(home)
        args += ["--tls-cert", str(cert), "--tls-key", str(key)]
        verify = str(cert)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "jcu taxii serve did not listen"
                time.sleep(0.1)
        scheme = "https" if tls else "http"
        server = Server(
            f"{scheme}://127.0.0.1:{port}/taxii2/",
            user="cert-eu",
            password=PASSWORD,
            verify=verify,
        )
        (root,) = server.api_roots
        with server, root:
            (collection,) = root.collections
            pages = list(as_pages(collection.get_objects, per_request=2))
        assert sum(len(p["objects"]) for p in pages) == 5
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert PASSWORD.encode() not in err


def test_serve_refuses_plain_http_off_loopback(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # refused, never bound
    code, _, err = run(["taxii", "serve", "--as", "cert-eu", "--host", "0.0.0.0"], capsys)  # noqa: S104
    assert code == 1
    assert err.count("\n") == 1 and "--tls-cert" in err
