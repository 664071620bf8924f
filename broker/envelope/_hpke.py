"""Content-key wrapping with HPKE (RFC 9180, base mode), from cryptography's hpke module.

Hazardous material kept apart from the envelope recipe. The `info` string binds
each wrapped key to its context (format version, suite, sender, recipient,
recipient key id and content key id), so a wrapped key cannot be presented as
belonging to another recipient, key or sender.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hpke

from broker.errors import TamperedCiphertext, UnsupportedVersion
from broker.trust.material import KemPrivateKey, KemPublicKey

_INFO_DOMAIN = b"jcu-broker/content-key/v1"

_SUITES: dict[str, hpke.Suite] = {
    # DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM
    "x25519": hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    # ML-KEM-768 + X25519 hybrid, HKDF-SHA256, AES-256-GCM
    "mlkem768x25519": hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM
    ),
}


def _suite(kem: str) -> hpke.Suite:
    try:
        return _SUITES[kem]
    except KeyError:
        raise UnsupportedVersion(f"unsupported key-wrap KEM {kem!r}") from None


def _length_prefixed(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)


def wrap_info(kem: str, sender: str, recipient: str, recipient_key_id: str, ck_id: bytes) -> bytes:
    return _length_prefixed(
        _INFO_DOMAIN,
        kem.encode(),
        sender.encode(),
        recipient.encode(),
        recipient_key_id.encode(),
        ck_id,
    )


def wrap(kem: str, public_key: KemPublicKey, content_key: bytes, info: bytes) -> bytes:
    """HPKE seal of the content key: enc || ciphertext."""
    return _suite(kem).encrypt(content_key, public_key, info=info)


def unwrap(kem: str, private_key: KemPrivateKey, wrapped: bytes, info: bytes) -> bytes:
    """HPKE open of a wrapped content key; TamperedCiphertext if it does not open."""
    suite = _suite(kem)
    try:
        return suite.decrypt(wrapped, private_key, info=info)
    except Exception:  # InvalidTag, ValueError (bad length), TypeError (wrong key type)
        raise TamperedCiphertext("the wrapped content key does not open with your key") from None
