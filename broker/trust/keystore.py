"""Private keys at rest: one directory per owner, each key an encrypted PKCS#8 PEM file.

Layout under `Settings.keystore` ($JCU_HOME/keys):

    <owner>/<key id>.ed25519.pem     signing key
    <owner>/<key id>.x25519.pem      KEM key (X25519 communities)
    <owner>/<key id>.mlkem768.pem    ML-KEM-768 half of a hybrid KEM key
    <owner>/<key id>.x25519.pem      X25519 half of the same hybrid key

Every file is encrypted PKCS#8 (PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC, what
cryptography's BestAvailableEncryption writes), mode 0600. cryptography only
writes PKCS#8 with a fixed, low PBKDF2 count (2048), so the PKCS#8 password is
not the operator's passphrase itself but scrypt(passphrase, salt) (RFC 7914;
n=2**17, r=8, p=1), with the salt and parameters in `<keystore>/kdf.json`. A
guess at the passphrase thus costs one scrypt, and the files stay standard
PKCS#8 that `openssl pkcs8` opens given the derived password.

The passphrase comes from `broker.trust.passphrase` (environment, a file only
its owner reads, or a prompt). cryptography 50 serialises ML-KEM-768 private keys
(their 64-byte seed) as PKCS#8 too, so the hybrid needs no construction of its
own: it is two PKCS#8 files under one key id.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path

from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.utils import Buffer

from broker.errors import KeystoreError
from broker.trust.material import (
    SIGNING_ALGORITHM,
    KemAlgorithm,
    KemPrivateKey,
    kem_public_bytes,
    key_id,
)
from broker.trust.passphrase import PASSPHRASE_ENV, PASSPHRASE_FILE_ENV, passphrase_from_env

#: Owner name under which the registry authority's signing key is kept.
AUTHORITY_OWNER = "_authority"
#: scrypt cost (RFC 7914): N=2**17, r=8, p=1 is 128 MiB and about half a second,
#: once per process. Keystores below MIN_SCRYPT_N are refused.
DEFAULT_SCRYPT_N = 2**17
MIN_SCRYPT_N = 2**17
_SCRYPT_R = 8
_SCRYPT_P = 1

_OWNER_RE = re.compile(r"^(?:[a-z0-9][a-z0-9_.-]{0,62}|_authority)$")
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")


class Keystore:
    """Encrypted private keys of one or more owners (participants, the registry authority)."""

    def __init__(
        self,
        directory: Path,
        passphrase: bytes,
        *,
        scrypt_n: int = DEFAULT_SCRYPT_N,
        min_scrypt_n: int = MIN_SCRYPT_N,
    ):
        """`scrypt_n` applies when the keystore is created; an existing one keeps its own,
        and is refused if it is below `min_scrypt_n` (lowered only by unit tests)."""
        if not passphrase:
            raise KeystoreError(f"empty keystore passphrase; set {PASSPHRASE_ENV}")
        if scrypt_n < min_scrypt_n:
            raise KeystoreError(f"scrypt N={scrypt_n} is below the minimum {min_scrypt_n}")
        self.directory = Path(directory)
        self._passphrase = passphrase
        self._scrypt_n = scrypt_n
        self._min_n = min_scrypt_n
        self._password: bytes | None = None
        self._ahead: Future[bytes] | None = None
        self._cache: dict[tuple[str, str], object] = {}
        self._held: dict[str, set[str]] = {}

    def _pkcs8_password(self, create: bool) -> bytes:
        """scrypt(passphrase) with the keystore's salt, derived once per instance."""
        if self._password is None:
            ahead, self._ahead = self._ahead, None
            self._password = ahead.result() if ahead is not None else self._derive(create)
        return self._password

    def unlock_ahead(self) -> None:
        """Start deriving the key files' password now, in a thread, for a process that will
        open a key: scrypt (its cost unchanged) releases the GIL, so the process loads its
        code and reads its state meanwhile. What goes wrong (a damaged kdf.json) is raised
        when the first key is opened, as without this."""
        if self._password is not None or self._ahead is not None:
            return
        if not (self.directory / "kdf.json").exists():
            return  # nothing to derive (yet): the first key opened says why
        future: Future[bytes] = Future()

        def derive() -> None:
            try:
                future.set_result(self._derive(create=False))
            except BaseException as exc:
                future.set_exception(exc)

        self._ahead = future
        threading.Thread(target=derive, name="keystore-unlock", daemon=True).start()

    def _derive(self, create: bool) -> bytes:
        params_path = self.directory / "kdf.json"
        if params_path.exists():
            try:
                params = json.loads(params_path.read_text(encoding="utf-8"))
                salt = bytes.fromhex(params["salt"])
                n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
            except (OSError, ValueError, KeyError, TypeError):
                raise KeystoreError(f"{params_path} is damaged; restore it from backup") from None
            if n < self._min_n:
                raise KeystoreError(
                    f"the keystore at {self.directory} was made with scrypt N={n}, below the "
                    f"minimum {self._min_n}; run `jcu keys passwd` to re-encrypt it"
                )
        elif create:
            salt, n, r, p = os.urandom(16), self._scrypt_n, _SCRYPT_R, _SCRYPT_P
            params = {"kdf": "scrypt", "salt": salt.hex(), "n": n, "r": r, "p": p}
            self._write(params_path, json.dumps(params).encode())
        else:
            raise KeystoreError(
                f"no keystore at {self.directory}; run `jcu init --participant ORG` "
                "(or `jcu authority init`)"
            )
        derived = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(self._passphrase)
        return base64.b64encode(derived)

    def __repr__(self) -> str:  # never show the passphrase
        return f"Keystore({str(self.directory)!r})"

    # -- layout -------------------------------------------------------------------------

    def _owner_dir(self, owner: str) -> Path:
        if not _OWNER_RE.match(owner):
            raise KeystoreError(f"not a valid key owner name: {owner!r}")
        return self.directory / owner

    def _path(self, owner: str, kid: str, component: str) -> Path:
        if not _KEY_ID_RE.match(kid):
            raise KeystoreError(f"not a valid key id: {kid!r}")
        return self._owner_dir(owner) / f"{kid}.{component}.pem"

    def owners(self) -> tuple[str, ...]:
        if not self.directory.is_dir():
            return ()
        return tuple(sorted(p.name for p in self.directory.iterdir() if p.is_dir()))

    def key_ids(self, owner: str, component: str) -> tuple[str, ...]:
        """Key ids held for `owner` with files of `component` (ed25519, x25519, mlkem768)."""
        d = self._owner_dir(owner)
        if not d.is_dir():
            return ()
        suffix = f".{component}.pem"
        return tuple(sorted(p.name[: -len(suffix)] for p in d.glob(f"*{suffix}")))

    def has_key(self, owner: str, kid: str) -> bool:
        """Whether `owner` holds key `kid` (listing cached; re-read on a miss)."""
        held = self._held.get(owner)
        if held is not None and kid in held:
            return True
        d = self._owner_dir(owner)
        held = {p.name.split(".", 1)[0] for p in d.glob("*.pem")} if d.is_dir() else set()
        self._held[owner] = held
        return kid in held

    # -- writing ------------------------------------------------------------------------

    def _encryption(self) -> serialization.KeySerializationEncryption:
        return serialization.BestAvailableEncryption(self._pkcs8_password(create=True))

    def _write(self, path: Path, pem: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeystoreError(f"refusing to overwrite existing key file {path}") from None
        with os.fdopen(fd, "wb") as f:
            f.write(pem)

    def _pem(
        self, key: ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey | mlkem.MLKEM768PrivateKey
    ) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, self._encryption()
        )

    def generate_signing_key(self, owner: str) -> tuple[str, bytes]:
        """A new Ed25519 key for `owner`; returns (key id, raw public key)."""
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes_raw()
        kid = key_id(SIGNING_ALGORITHM, public)
        self._write(self._path(owner, kid, "ed25519"), self._pem(key))
        self._cache[(owner, kid)] = key
        return kid, public

    def generate_kem_key(self, owner: str, algorithm: KemAlgorithm) -> tuple[str, bytes]:
        """A new KEM key pair for `owner`; returns (key id, raw public key)."""
        xkey = x25519.X25519PrivateKey.generate()
        if algorithm == "x25519":
            public = kem_public_bytes(algorithm, xkey.public_key())
            kid = key_id(algorithm, public)
            self._write(self._path(owner, kid, "x25519"), self._pem(xkey))
            self._cache[(owner, kid)] = xkey
            return kid, public
        if algorithm == "mlkem768x25519":
            mkey = mlkem.MLKEM768PrivateKey.generate()
            public = kem_public_bytes(algorithm, xkey.public_key(), mkey.public_key())
            kid = key_id(algorithm, public)
            self._write(self._path(owner, kid, "mlkem768"), self._pem(mkey))
            self._write(self._path(owner, kid, "x25519"), self._pem(xkey))
            self._cache[(owner, kid)] = hpke.MLKEM768X25519PrivateKey(mkey, xkey)
            return kid, public
        raise KeystoreError(f"unknown KEM algorithm {algorithm!r}")

    # -- reading ------------------------------------------------------------------------

    def _load(self, path: Path) -> object:
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            raise KeystoreError(f"no key file {path}; run `jcu init` (or check JCU_HOME)") from None
        except OSError as exc:
            raise KeystoreError(f"cannot read key file {path}: {exc.strerror}") from None
        try:
            return serialization.load_pem_private_key(
                pem, password=self._pkcs8_password(create=False)
            )
        except (ValueError, TypeError):
            raise KeystoreError(
                f"cannot decrypt {path}: wrong passphrase in {PASSPHRASE_ENV} / "
                f"{PASSPHRASE_FILE_ENV}, or a damaged file"
            ) from None

    def signing_key(self, owner: str, kid: str) -> ed25519.Ed25519PrivateKey:
        cached = self._cache.get((owner, kid))
        if isinstance(cached, ed25519.Ed25519PrivateKey):
            return cached
        key = self._load(self._path(owner, kid, "ed25519"))
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise KeystoreError(f"key {owner}/{kid} is not an Ed25519 key")
        self._cache[(owner, kid)] = key
        return key

    def signing_key_when_needed(self, owner: str, kid: str) -> ed25519.Ed25519PrivateKey:
        """`signing_key(owner, kid)`, opened when first used rather than now: a service holds
        it from its start, while the keystore is still unlocking (`unlock_ahead`), and
        says that it can sign (the passphrase is right) by opening it before it acts."""
        cached = self._cache.get((owner, kid))
        if isinstance(cached, ed25519.Ed25519PrivateKey):
            return cached
        return _SigningKeyWhenNeeded(lambda: self.signing_key(owner, kid))

    def kem_key(self, owner: str, kid: str) -> KemPrivateKey:
        """The KEM private key `kid` of `owner`, X25519 or the ML-KEM-768 + X25519 hybrid."""
        cached = self._cache.get((owner, kid))
        if isinstance(cached, x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey):
            return cached
        xkey = self._load(self._path(owner, kid, "x25519"))
        if not isinstance(xkey, x25519.X25519PrivateKey):
            raise KeystoreError(f"key {owner}/{kid} is not an X25519 key")
        result: KemPrivateKey = xkey
        mpath = self._path(owner, kid, "mlkem768")
        if mpath.exists():
            mkey = self._load(mpath)
            if not isinstance(mkey, mlkem.MLKEM768PrivateKey):
                raise KeystoreError(f"key {owner}/{kid} is not an ML-KEM-768 key")
            result = hpke.MLKEM768X25519PrivateKey(mkey, xkey)
        self._cache[(owner, kid)] = result
        return result


class _SigningKeyWhenNeeded(ed25519.Ed25519PrivateKey):
    """An Ed25519 private key opened from the keystore at its first use."""

    def __init__(self, open_key: Callable[[], ed25519.Ed25519PrivateKey]) -> None:
        self._open = open_key
        self._key: ed25519.Ed25519PrivateKey | None = None

    def _opened(self) -> ed25519.Ed25519PrivateKey:
        if self._key is None:
            self._key = self._open()
        return self._key

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._opened().public_key()

    def sign(self, data: Buffer) -> bytes:
        return self._opened().sign(data)

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        return self._opened().private_bytes(encoding, format, encryption_algorithm)

    def private_bytes_raw(self) -> bytes:
        return self._opened().private_bytes_raw()

    def __copy__(self) -> ed25519.Ed25519PrivateKey:
        return self._opened()

    def __deepcopy__(self, memo: dict[int, object]) -> ed25519.Ed25519PrivateKey:
        return self._opened()

    def __repr__(self) -> str:  # never the key
        return "<Ed25519 signing key, opened when first used>"


def open_keystore(
    directory: Path, env: Mapping[str, str] | None = None, *, purpose: str = "the keystore"
) -> Keystore:
    """The keystore at `directory` with the passphrase from the environment (or a prompt)."""
    return Keystore(directory, passphrase_from_env(env, purpose=purpose))


def change_passphrase(directory: Path, old: bytes, new: bytes) -> int:
    """Re-encrypt every key file under `directory` with `new` (a new salt, today's scrypt
    cost); returns how many. Also how a keystore made below MIN_SCRYPT_N is brought up
    to it. The new files are written beside the old ones and swapped in by renames, so a
    crash leaves one whole keystore or the other; the old files are then removed."""
    directory = Path(directory)
    source = Keystore(directory, old, min_scrypt_n=1)  # read whatever cost it was made with
    staging = directory.with_name(directory.name + ".rekey")
    if staging.exists():
        raise KeystoreError(f"{staging} exists (an interrupted change?); remove it and retry")
    target = Keystore(staging, new)
    count = 0
    for owner in source.owners():
        for path in sorted((directory / owner).glob("*.pem")):
            key = source._load(path)
            if not isinstance(
                key, ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey | mlkem.MLKEM768PrivateKey
            ):
                raise KeystoreError(f"{path} holds a key of an unexpected type")
            target._write(staging / owner / path.name, target._pem(key))
            count += 1
    if count == 0:
        raise KeystoreError(f"no keys in {directory}; nothing to re-encrypt")
    retired = directory.with_name(directory.name + ".old")
    os.replace(directory, retired)
    os.replace(staging, directory)
    for path in sorted(retired.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    retired.rmdir()
    return count
