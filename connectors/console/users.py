"""Console accounts on a node: a name, a role and a salted scrypt hash, never plaintext.

The file (`$JCU_HOME/console-users.json`, mode 0600) lives in the node's home,
next to its keys: an account is tied to the node of the organisation that set
it. An `auditor` account is an auditor of that node's organisation, and of no
other; an `operator` account is the platform role, granted on that node.
"""

from __future__ import annotations

import base64
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
from connectors.console.access import ROLES, Role, Viewer

USERS_FILE = "console-users.json"
MIN_PASSWORD_LENGTH = 12
_FORMAT = 1
_LENGTH = 32


@dataclass(frozen=True, slots=True)
class _Account:
    role: Role
    org: str | None
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "org": self.org,
            "kdf": "scrypt",
            "n": self.n,
            "r": self.r,
            "p": self.p,
            "salt": base64.b64encode(self.salt).decode(),
            "hash": base64.b64encode(self.digest).decode(),
        }

    @classmethod
    def from_json(cls, name: str, d: Any) -> _Account:
        try:
            if d["kdf"] != "scrypt" or d["role"] not in ROLES:
                raise ValueError("unsupported kdf or role")
            return cls(
                d["role"],
                d.get("org"),
                int(d["n"]),
                int(d["r"]),
                int(d["p"]),
                base64.b64decode(d["salt"]),
                base64.b64decode(d["hash"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"console users file: bad entry for {name!r}: {exc}") from None

    def kdf(self) -> Scrypt:
        return Scrypt(salt=self.salt, length=_LENGTH, n=self.n, r=self.r, p=self.p)


class ConsoleUsers:
    """Set passwords (CLI) and check them (the console), re-reading the file when it changes."""

    def __init__(self, path: Path, *, n: int = 2**15) -> None:
        self._path = path
        self._n = n
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._stamp: tuple[int, int, int] | None = None
        # Unknown names cost the same scrypt as known ones (no enumeration by timing).
        self._decoy = _Account("auditor", None, n, 8, 1, os.urandom(16), os.urandom(_LENGTH))

    @property
    def path(self) -> Path:
        return self._path

    def names(self) -> list[str]:
        with self._lock:
            self._refresh()
            return sorted(self._accounts)

    def set_password(self, name: str, password: str, role: Role, org: str | None) -> None:
        if not name or ":" in name or len(name) > 64:
            raise ConfigError("an account name is 1-64 characters, without ':'")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ConfigError(
                f"the console password for {name} is too short: use at least "
                f"{MIN_PASSWORD_LENGTH} characters"
            )
        if role == "auditor" and not org:
            raise ConfigError("an auditor account names its organisation")
        salt = secrets.token_bytes(16)
        digest = Scrypt(salt=salt, length=_LENGTH, n=self._n, r=8, p=1).derive(password.encode())
        account = _Account(role, org if role == "auditor" else None, self._n, 8, 1, salt, digest)
        with self._lock:
            self._refresh()
            accounts = {**self._accounts, name: account}
            self._write(accounts)
            self._accounts = accounts
            self._stamp = self._file_stamp()

    def check(self, name: str, password: str) -> Viewer | None:
        """The viewer `name` logs in as, or None; blocking (scrypt): run it off the loop."""
        with self._lock:
            self._refresh()
            account = self._accounts.get(name)
        candidate = account or self._decoy
        try:
            candidate.kdf().verify(password.encode(), candidate.digest)
        except InvalidKey:
            return None
        if account is None:
            return None
        return Viewer(name, account.role, account.org)

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
        self._accounts = self._read() if stamp is not None else {}
        self._stamp = stamp

    def _read(self) -> dict[str, _Account]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the console users file {self._path}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ConfigError(f"{self._path} is not a console users file (format {_FORMAT})")
        return {str(k): _Account.from_json(str(k), v) for k, v in (data.get("users") or {}).items()}

    def _write(self, accounts: dict[str, _Account]) -> None:
        from broker.files import write_private

        doc = {"format": _FORMAT, "users": {k: a.as_json() for k, a in sorted(accounts.items())}}
        write_private(self._path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
