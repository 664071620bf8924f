"""Audit secrets: what keeps an audit leaf private from whoever can read the topic.

Each node holds one random 32-byte master secret (`<audit dir>/audit.secret`,
0600 in a 0700 directory). Every enforcement point `<participant>/<side>` of
the node gets its own secret from it (HKDF-SHA256, info = the enforcement
point id), and from that two keys (HKDF again):

- the content-hash key: a leaf names its message's content by
  HMAC-SHA256(key, SHA-256(payload)), never by a plain hash, so the topic
  cannot confirm a guess of the content (an IP address in a /16 is 65,536
  guesses) and a disclosed leaf does not either;
- the leaf key root: each leaf's content is sealed with AES-256-GCM under its
  own key, HMAC-SHA256(root, salt) for a random 16-byte salt the leaf
  carries, with the leaf's clear part as associated data. One leaf's key can
  be handed out (a proof bundle does) without opening any other leaf.

An auditor is given an enforcement point's secret (`jcu audit keys export`)
and can then read its leaves and check content hashes; no other secret of the
node comes with it. Secrets never appear in reprs, logs or errors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from broker.errors import AuditError, ConfigError
from broker.files import private_dir, write_private

MASTER_FILE = "audit.secret"
#: The enforcement points a node's participant has, `<participant>/<side>`: what
#: `jcu audit keys export` hands over unless told which.
POINT_SIDES: tuple[str, ...] = (
    "publish",
    "receive",
    "replay",
    "seal",
    "control",
    "assist",
    "inventory",
)
SECRET_SIZE = 32
SALT_SIZE = 16
#: A sealed leaf content: AES-256-GCM under a key used once, so a fixed nonce.
_NONCE = bytes(12)
_EXPORT_TAG = "jcu-audit-key/v1"


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=SECRET_SIZE, salt=None, info=info).derive(secret)


class PointKey:
    """One enforcement point's audit secret and the keys made from it."""

    __slots__ = ("_content", "_leaves", "_secret", "enforcement_point")

    def __init__(self, enforcement_point: str, secret: bytes) -> None:
        if len(secret) != SECRET_SIZE:
            raise ConfigError(f"an audit secret is {SECRET_SIZE} bytes")
        self.enforcement_point = enforcement_point
        self._secret = secret
        self._content = _hkdf(secret, b"jcu-broker/audit/content-hash/v1")
        self._leaves = _hkdf(secret, b"jcu-broker/audit/leaf-key/v1")

    def __repr__(self) -> str:
        return f"PointKey({self.enforcement_point!r}, <secret>)"

    def content_hash(self, data: bytes) -> bytes:
        """The keyed hash of a payload: HMAC-SHA256(key, SHA-256(payload))."""
        return hmac.digest(self._content, hashlib.sha256(data).digest(), "sha256")

    def content_hash_of_digest(self, sha256: bytes) -> bytes:
        """The same, from the payload's SHA-256 (what the envelope opener computes)."""
        return hmac.digest(self._content, sha256, "sha256")

    def leaf_key(self, salt: bytes) -> bytes:
        """The key of the leaf that carries `salt` (what a proof bundle discloses)."""
        return hmac.digest(self._leaves, salt, "sha256")

    def seal_with(self, salt: bytes, aad: bytes, content: bytes) -> bytes:
        return seal_content(self.leaf_key(salt), aad, content)

    def open_with(self, salt: bytes, aad: bytes, sealed: bytes) -> bytes:
        """The leaf content; AuditError if it does not open under this key."""
        return open_content(self.leaf_key(salt), aad, sealed)

    def export(self) -> str:
        """One line an auditor loads with `--keys` (the secret itself: handle as one)."""
        encoded = base64.b64encode(self._secret).decode("ascii")
        return f"{_EXPORT_TAG} {self.enforcement_point} {encoded}\n"


def new_salt() -> bytes:
    return os.urandom(SALT_SIZE)


def seal_content(leaf_key: bytes, aad: bytes, content: bytes) -> bytes:
    return AESGCM(leaf_key).encrypt(_NONCE, content, aad)


def open_content(leaf_key: bytes, aad: bytes, sealed: bytes) -> bytes:
    try:
        return AESGCM(leaf_key).decrypt(_NONCE, sealed, aad)
    except (InvalidTag, ValueError):
        raise AuditError("the leaf content does not open under this key") from None


class AuditKeys:
    """The audit secrets one reader or writer holds: those a node derives for its own
    enforcement points (from its master secret), and any an auditor was given."""

    def __init__(self, master: bytes | None = None, *, owner: str | None = None) -> None:
        if master is not None and len(master) != SECRET_SIZE:
            raise ConfigError(f"an audit master secret is {SECRET_SIZE} bytes")
        self._master = master
        self._owner = owner
        self._points: dict[str, PointKey] = {}

    def __repr__(self) -> str:
        return f"AuditKeys(owner={self._owner!r}, points={sorted(self._points)})"

    @classmethod
    def open(cls, directory: Path, *, owner: str | None = None, create: bool = True) -> AuditKeys:
        """The master secret in `directory` (made if missing and `create`).

        `owner`: the participant whose enforcement points the master covers
        (None: any, for a log's own state directory)."""
        path = directory / MASTER_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            if not create:
                return cls(None, owner=owner)
            raw = _create_master(path)
        except OSError as exc:
            raise AuditError(f"cannot read the audit secret {path}: {exc.strerror}") from None
        if len(raw) != SECRET_SIZE:
            raise AuditError(
                f"the audit secret {path} is damaged ({len(raw)} bytes); restore it from backup"
            )
        return cls(raw, owner=owner)

    def point(self, enforcement_point: str) -> PointKey | None:
        """The key of `enforcement_point`, if this holder has it."""
        key = self._points.get(enforcement_point)
        if key is not None:
            return key
        if self._master is None:
            return None
        if self._owner is not None and enforcement_point.partition("/")[0] != self._owner:
            return None
        info = b"jcu-broker/audit/enforcement-point/v1\x00" + enforcement_point.encode()
        key = self._points[enforcement_point] = PointKey(
            enforcement_point, _hkdf(self._master, info)
        )
        return key

    def node_secret(self, purpose: str) -> bytes:
        """A secret of this node for another purpose than the audit (e.g. the keyed message
        ids of `broker.pep.message_ids`), derived from the master under its own label: it
        is never an enforcement point's key, so exporting those to an auditor hands it over."""
        if self._master is None:
            raise AuditError("no audit master secret here to derive a node secret from")
        return _hkdf(self._master, b"jcu-broker/node-secret/v1\x00" + purpose.encode())

    def require(self, enforcement_point: str) -> PointKey:
        key = self.point(enforcement_point)
        if key is None:
            raise AuditError(f"no audit key of {enforcement_point} here")
        return key

    def add(self, key: PointKey) -> None:
        self._points[key.enforcement_point] = key

    def load(self, paths: Iterable[Path]) -> AuditKeys:
        """Add the keys exported to `paths` (files, or directories of `*.key` files)."""
        for path in paths:
            files = sorted(path.glob("*.key")) if path.is_dir() else [path]
            for file in files:
                for key in parse_exported(file):
                    self.add(key)
        return self

    def points(self) -> Iterator[str]:
        return iter(sorted(self._points))


def parse_exported(path: Path) -> list[PointKey]:
    """The keys in a file `jcu audit keys export` wrote; ConfigError naming the line if not."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read audit key file {path}: {exc}") from None
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] != _EXPORT_TAG:
            raise ConfigError(f"{path}:{n} is not a line of `jcu audit keys export`")
        try:
            secret = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            secret = b""
        if len(secret) != SECRET_SIZE:
            raise ConfigError(f"{path}:{n}: the key of {parts[1]} is damaged")
        keys.append(PointKey(parts[1], secret))
    return keys


def _create_master(path: Path) -> bytes:
    """A new master secret, written once: a second process racing us keeps ours (O_EXCL)."""
    private_dir(path.parent)
    raw = os.urandom(SECRET_SIZE)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    write_private(tmp, raw)
    try:
        os.link(tmp, path)  # fails if another process made it first
    except FileExistsError:
        raw = path.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    return raw
