"""A small certificate authority for a Kafka cluster: the CA, broker and client certificates.

The local cluster (`jcu kafka up`) and docker-compose need TLS that clients
can verify without trusting the whole internet: one CA made here, whose
certificate every client is given as its `ca_file`, issues each broker's
certificate (server and client auth: brokers talk to each other over mTLS)
and, for organisations that prefer mTLS to SCRAM, client certificates whose
common name is the Kafka principal. ECDSA P-256 throughout: every TLS stack
involved (the JVM, OpenSSL under Python and librdkafka) speaks it.

Private keys are written 0600 (PKCS#8, unencrypted: the broker reads them at
start without a prompt, so the file mode is their protection, as for any
Kafka keystore).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.errors import ConfigError
from broker.files import write_private

CA_DAYS = 3650
LEAF_DAYS = 825
#: Hosts every broker certificate names: loopback, and the compose service names.
DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its key, as files: `pem` holds the key then the chain (Kafka's PEM
    keystore layout); `cert` and `key` the same material apart (Python and librdkafka)."""

    pem: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jcu-broker"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class LocalCA:
    """The CA of one cluster, kept in a directory (`ca.pem`, `ca.key`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def cert_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def _key_file(self) -> Path:
        return self.directory / "ca.key"

    @classmethod
    def open_or_create(cls, directory: Path, name: str = "jcu-broker local Kafka CA") -> LocalCA:
        ca = cls(directory)
        if ca.cert_file.exists() and ca._key_file.exists():
            return ca
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        subject = _name(name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        write_private(ca._key_file, _key_pem(key))
        write_private(ca.cert_file, cert.public_bytes(serialization.Encoding.PEM))
        ca.cert_file.chmod(0o644)  # the CA certificate is public: clients are given it
        return ca

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        try:
            cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
            key = serialization.load_pem_private_key(self._key_file.read_bytes(), None)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the Kafka CA in {self.directory}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"the Kafka CA key in {self.directory} is not an EC key")
        return cert, key

    def issue(
        self,
        common_name: str,
        out: Path,
        *,
        hosts: Iterable[str] = (),
        server: bool = False,
        client: bool = True,
    ) -> Issued:
        """A certificate for `common_name` (a broker: `server`, with `hosts` as its SANs; a
        Kafka client: its principal), written as `out`.pem / .crt / .key."""
        ca_cert, ca_key = self._load()
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        usages = [
            u
            for u, on in (
                (ExtendedKeyUsageOID.SERVER_AUTH, server),
                (ExtendedKeyUsageOID.CLIENT_AUTH, client),
            )
            if on
        ]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = _key_pem(key)
        chain = cert_pem + ca_cert.public_bytes(serialization.Encoding.PEM)
        return Issued(
            pem=write_private(out.with_suffix(".pem"), key_pem + chain),
            cert=write_private(out.with_suffix(".crt"), chain),
            key=write_private(out.with_suffix(".key"), key_pem),
        )
