"""The envelope's byte layout: what is signed, what is authenticated as AAD.

An envelope is the Avro single-object encoding of `eu.jcu.v1.Envelope`, whose
last two fields are `ciphertext` and `signature` (in every version: the format
relies on it). Avro encodes a `bytes` field as a zig-zag varint length then
the bytes, so the encoding splits into

    prefix || bytes(ciphertext) || bytes(signature)

where `prefix` (single-object header, schema fingerprint, every header field,
the recipients block and the nonce) is a canonical encoding: Avro's binary
encoding of a record is unique for a given schema. Then

    AAD            = AAD_DOMAIN || prefix || 0x00 0x00   (ciphertext, signature empty)
    signed message = SIG_DOMAIN || prefix || bytes(ciphertext) || 0x00

Both are computed from the bytes as received, never from a re-encoding, so a
reader with a newer schema verifies exactly what the sender signed.

The domain strings are the same in format versions 1 and 2 (they name the
signing construction, which did not change): the prefix starts with the
single-object header, whose fingerprint names the exact Envelope schema, and
with the version, so bytes signed as one version never verify as the other.
"""

from __future__ import annotations

from broker.avro_binary import encode_bytes, encode_long
from broker.errors import MalformedRecord

#: The format version the sealer writes: labels inside the ciphertext (`_content`).
ENVELOPE_VERSION = 2
#: The format before it, still read: all labels in the clear header, plaintext = payload.
LEGACY_VERSION = 1
SIGNATURE_ALGORITHM = "ed25519"
CONTENT_ALGORITHM = "aes-256-gcm"
SIGNATURE_DOMAIN = b"jcu-broker/envelope/v1/signature\x00"
AAD_DOMAIN = b"jcu-broker/envelope/v1/aad\x00"
_EMPTY_BYTES = b"\x00"  # Avro encoding of b""


def split_template(encoded: bytes) -> tuple[bytes, bytes]:
    """Split the encoding of an envelope whose message id, nonce, ciphertext and signature
    are all empty into (head, middle), so that for any id and nonce

        prefix = head || string(message_id) || middle || bytes(nonce)

    Many envelopes of one batch share everything else: encode once, splice per message.
    """
    head_len = 10 + len(encode_long(ENVELOPE_VERSION))  # C3 01, fingerprint, version
    if encoded[head_len : head_len + 1] != _EMPTY_BYTES or not encoded.endswith(_EMPTY_BYTES * 3):
        raise AssertionError("envelope template does not have the expected layout")
    return encoded[:head_len], encoded[head_len + 1 : -3]


def prefix_of_unsealed(encoded: bytes) -> bytes:
    """The prefix, given the encoding of an envelope with empty ciphertext and signature."""
    if not encoded.endswith(_EMPTY_BYTES * 2):
        raise AssertionError("envelope encoding does not end with ciphertext and signature")
    return encoded[:-2]


def prefix_of(data: bytes, ciphertext: bytes, signature: bytes) -> bytes:
    """The prefix of received envelope bytes whose decoded tail is (ciphertext, signature)."""
    tail = encode_bytes(ciphertext) + encode_bytes(signature)
    if not data.endswith(tail):
        raise MalformedRecord("envelope does not end with its ciphertext and signature")
    return data[: len(data) - len(tail)]


def aad(prefix: bytes) -> bytes:
    return AAD_DOMAIN + prefix + _EMPTY_BYTES * 2


def signed_message(prefix: bytes, ciphertext: bytes) -> bytes:
    return SIGNATURE_DOMAIN + prefix + encode_bytes(ciphertext) + _EMPTY_BYTES


def assemble(prefix: bytes, ciphertext: bytes, signature: bytes) -> bytes:
    return prefix + encode_bytes(ciphertext) + encode_bytes(signature)
