"""TAXII users: participant ids with salted scrypt password hashes, never plaintext.

The file (`$JCU_HOME/taxii-users.json`, mode 0600) maps a participant id to
its scrypt parameters, salt and hash. The server re-reads it when it changes,
so `jcu taxii passwd` takes effect without a restart. A scrypt check costs tens
of milliseconds by design; a successful check is remembered as a keyed digest
of the credentials (the key lives only in this process), so a client paging
through a collection pays it once, not per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from broker.errors import ConfigError
from broker.files import private_dir

USERS_FILE = "taxii-users.json"
MIN_PASSWORD_LENGTH = 12

_FORMAT = 1
_LENGTH = 32
_CACHE_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class ScryptCost:
    """scrypt work factors; the default needs 32 MiB and tens of ms per check."""

    n: int = 2**15
    r: int = 8
    p: int = 1


@dataclass(frozen=True, slots=True)
class _Entry:
    cost: ScryptCost
    salt: bytes
    digest: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "kdf": "scrypt",
            "n": self.cost.n,
            "r": self.cost.r,
            "p": self.cost.p,
            "salt": base64.b64encode(self.salt).decode(),
            "hash": base64.b64encode(self.digest).decode(),
        }

    @classmethod
    def from_json(cls, user: str, data: Any) -> _Entry:
        try:
            if data["kdf"] != "scrypt":
                raise ValueError(f"unsupported kdf {data['kdf']!r}")
            cost = ScryptCost(int(data["n"]), int(data["r"]), int(data["p"]))
            return cls(cost, base64.b64decode(data["salt"]), base64.b64decode(data["hash"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"TAXII users file: bad entry for {user!r}: {exc}") from None


def _scrypt(cost: ScryptCost, salt: bytes) -> Scrypt:
    return Scrypt(salt=salt, length=_LENGTH, n=cost.n, r=cost.r, p=cost.p)


class TaxiiUsers:
    """The password file: set passwords (CLI) and verify Basic credentials (server)."""

    def __init__(self, path: Path, *, cost: ScryptCost | None = None) -> None:
        self._path = Path(path)
        self._cost = cost or ScryptCost()
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[str, set[bytes]] = {}
        # Unknown users cost the same scrypt as known ones (no user enumeration by timing).
        self._decoy = _Entry(self._cost, secrets.token_bytes(16), secrets.token_bytes(_LENGTH))

    @property
    def path(self) -> Path:
        return self._path

    def users(self) -> list[str]:
        with self._lock:
            self._refresh()
            return sorted(self._entries)

    def set_password(self, user: str, password: str) -> None:
        """Store a fresh salted hash for `user` (atomic replace, file mode 0600)."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ConfigError(
                f"the TAXII password for {user} is too short: use at least "
                f"{MIN_PASSWORD_LENGTH} characters"
            )
        salt = secrets.token_bytes(16)
        entry = _Entry(self._cost, salt, _scrypt(self._cost, salt).derive(password.encode()))
        with self._lock:
            self._refresh()
            entries = dict(self._entries)
            entries[user] = entry
            self._write(entries)
            self._entries = entries
            self._verified.pop(user, None)
            self._stamp = self._file_stamp()

    def verify(self, user: str, password: str) -> bool:
        """True iff `password` is `user`'s; blocking (run it off the event loop)."""
        token = hmac.new(self._cache_key, f"{user}\x00{password}".encode(), hashlib.sha256).digest()
        with self._lock:
            self._refresh()
            entry = self._entries.get(user)
            if entry is not None and token in self._verified.get(user, ()):
                return True
        candidate = entry or self._decoy
        try:
            _scrypt(candidate.cost, candidate.salt).verify(password.encode(), candidate.digest)
        except InvalidKey:
            return False
        if entry is None:
            return False
        with self._lock:
            seen = self._verified.setdefault(user, set())
            if len(seen) >= _CACHE_LIMIT:
                seen.clear()
            if self._entries.get(user) is entry:
                seen.add(token)
        return True

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        self._entries = self._read() if stamp is not None else {}
        self._verified.clear()
        self._stamp = stamp

    def _read(self) -> dict[str, _Entry]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the TAXII users file {self._path}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ConfigError(f"{self._path} is not a TAXII users file (format {_FORMAT})")
        users = data.get("users") or {}
        return {str(u): _Entry.from_json(str(u), e) for u, e in users.items()}

    def _write(self, entries: dict[str, _Entry]) -> None:
        private_dir(self._path.parent)
        doc = {"format": _FORMAT, "users": {u: e.as_json() for u, e in sorted(entries.items())}}
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._path)
