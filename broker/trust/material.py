"""Key algorithms, key ids and raw public-key (de)serialisation, shared by keystore and keyring.

Public keys travel as raw bytes in signed ParticipantRecords. A key id names
a public key everywhere (envelope header, recipients block, files on disk):
the first 8 bytes of SHA-256(algorithm || 0x00 || raw public key), in hex.
Being derived from the key, an id cannot be attached to another key, and the
algorithm is part of it, so the same bytes under another algorithm differ.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from broker.errors import KeystoreError

SIGNING_ALGORITHM = "ed25519"
KemAlgorithm = Literal["x25519", "mlkem768x25519"]
KEM_ALGORITHMS: tuple[KemAlgorithm, ...] = ("x25519", "mlkem768x25519")

_MLKEM768_PUBLIC_LEN = 1184
_X25519_PUBLIC_LEN = 32

KemPublicKey = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
KemPrivateKey = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


def key_id(algorithm: str, public_bytes: bytes) -> str:
    """The key id of a raw public key under `algorithm` (16 hex characters)."""
    return hashlib.sha256(algorithm.encode() + b"\x00" + public_bytes).digest()[:8].hex()


def ed25519_public_bytes(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes_raw()


def load_ed25519_public(data: bytes) -> ed25519.Ed25519PublicKey:
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(data)
    except ValueError:
        raise KeystoreError("malformed Ed25519 public key") from None


def kem_public_bytes(
    algorithm: KemAlgorithm,
    x25519_public: x25519.X25519PublicKey,
    mlkem_public: mlkem.MLKEM768PublicKey | None = None,
) -> bytes:
    """Raw KEM public key: X25519 (32 bytes) or ML-KEM-768 (1184) || X25519 (32) for the hybrid."""
    x = x25519_public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if algorithm == "x25519":
        return x
    if mlkem_public is None:
        raise KeystoreError("the hybrid KEM needs an ML-KEM-768 public key")
    return mlkem_public.public_bytes_raw() + x


def load_kem_public(algorithm: str, data: bytes) -> KemPublicKey:
    """Raw bytes to the public-key object `cryptography`'s HPKE suite takes."""
    try:
        if algorithm == "x25519" and len(data) == _X25519_PUBLIC_LEN:
            return x25519.X25519PublicKey.from_public_bytes(data)
        if algorithm == "mlkem768x25519" and len(data) == _MLKEM768_PUBLIC_LEN + _X25519_PUBLIC_LEN:
            return hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(data[:_MLKEM768_PUBLIC_LEN]),
                x25519.X25519PublicKey.from_public_bytes(data[_MLKEM768_PUBLIC_LEN:]),
            )
    except ValueError:
        pass
    raise KeystoreError(f"malformed {algorithm} KEM public key ({len(data)} bytes)")
