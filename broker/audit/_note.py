"""C2SP signed notes (c2sp.org/signed-note): text, a blank line, signature lines.

A note is UTF-8 text ending in a newline, then an empty line, then one or more
lines `— <key name> <base64(key id || signature)>`. The key id is four bytes;
for the two kinds of signature used here it is the first four bytes of
SHA-256(key name || 0x0A || signature type || raw public key), with type 0x01
for a plain Ed25519 note signature and 0x04 for a timestamped Ed25519 witness
cosignature (c2sp.org/tlog-cosignature, `cosignature/v1`). Parsing is strict:
anything the format does not allow is a `MalformedRecord`, never a guess.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.errors import MalformedRecord

SIGNATURE_PREFIX = "\u2014 "  # em dash, space
#: Signature type bytes of c2sp.org/signed-note.
ED25519 = 0x01
COSIGNATURE_V1 = 0x04
KEY_ID_SIZE = 4
#: A verifier must accept at least 16 signatures; more than this is refused outright.
MAX_SIGNATURES = 64
MAX_NOTE_BYTES = 64 * 1024


def check_key_name(name: str) -> None:
    """A key name is non-empty, without Unicode spaces or '+'."""
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise MalformedRecord(f"note key name {name!r} is empty or has a space or '+'")
    if any(ord(ch) < 0x20 for ch in name):
        raise MalformedRecord(f"note key name {name!r} has a control character")


def key_id(name: str, signature_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4]."""
    check_key_name(name)
    digest = hashlib.sha256(name.encode() + b"\n" + bytes((signature_type,)) + public_key)
    return digest.digest()[:KEY_ID_SIZE]


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: who (key name and key id) and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        payload = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{SIGNATURE_PREFIX}{self.name} {payload}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A note's text (ending in a newline) and its signatures, in the order written."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def with_signatures(self, extra: Sequence[NoteSignature]) -> Note:
        """The same note with `extra` appended, leaving out signatures it already holds."""
        held = set(self.signatures)
        return Note(self.text, self.signatures + tuple(s for s in extra if s not in held))


def check_text(text: str) -> None:
    """Note text: ends in a newline, has no control character but newlines."""
    if not text.endswith("\n"):
        raise MalformedRecord("note text does not end in a newline")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise MalformedRecord("note text holds a control character")


def parse_note(data: str | bytes) -> Note:
    """Split a signed note into its text and signature lines; MalformedRecord if it is not one."""
    if isinstance(data, bytes):
        if len(data) > MAX_NOTE_BYTES:
            raise MalformedRecord(f"note of {len(data)} bytes is larger than {MAX_NOTE_BYTES}")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedRecord("note is not UTF-8") from None
    elif len(data) > MAX_NOTE_BYTES:
        raise MalformedRecord(f"note of {len(data)} characters is too long")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in data):
        raise MalformedRecord("note holds a control character")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in data):
        raise MalformedRecord("note is not UTF-8 (a lone surrogate)")
    split = data.rfind("\n\n")
    if split < 0:
        raise MalformedRecord("note has no blank line before its signatures")
    text, block = data[: split + 1], data[split + 2 :]
    if not block.endswith("\n"):
        raise MalformedRecord("note signatures do not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedRecord(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    signatures = tuple(_signature(line) for line in lines)
    return Note(text, signatures)


def _signature(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedRecord(f"note signature line {line[:40]!r} does not start with '— '")
    name, space, payload = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or " " in payload:
        raise MalformedRecord(f"note signature line {line[:40]!r} is not '— name signature'")
    check_key_name(name)
    try:
        raw = base64.b64decode(payload.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise MalformedRecord(f"note signature of {name} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != payload:
        raise MalformedRecord(f"note signature of {name} is not canonical base64")
    if len(raw) <= KEY_ID_SIZE:
        raise MalformedRecord(f"note signature of {name} is too short")
    return NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


# -- the two kinds of signature used here ------------------------------------------------

_COSIGNATURE_HEADER = b"cosignature/v1\n"
_MAX_TIMESTAMP = (1 << 63) - 1


def sign_ed25519(key: ed25519.Ed25519PrivateKey, name: str, text: str) -> NoteSignature:
    """A plain Ed25519 note signature (type 0x01) of `text` under `name`."""
    public = key.public_key().public_bytes_raw()
    return NoteSignature(name, key_id(name, ED25519, public), key.sign(text.encode()))


def verify_ed25519(sig: NoteSignature, public: ed25519.Ed25519PublicKey, text: str) -> bool:
    """Whether `sig` is `public`'s type 0x01 signature of `text` (key id included)."""
    if sig.key_id != key_id(sig.name, ED25519, public.public_bytes_raw()):
        return False
    try:
        public.verify(sig.signature, text.encode())
    except InvalidSignature:
        return False
    return True


def _cosigned_message(text: str, seconds: int) -> bytes:
    return _COSIGNATURE_HEADER + f"time {seconds}\n".encode() + text.encode()


def cosign_v1(key: ed25519.Ed25519PrivateKey, name: str, text: str, seconds: int) -> NoteSignature:
    """A timestamped Ed25519 cosignature (type 0x04, c2sp.org/tlog-cosignature) of a note's
    text: eight bytes of POSIX time, big-endian, then Ed25519 over "cosignature/v1",
    "time <seconds>" and the text."""
    if not 0 <= seconds <= _MAX_TIMESTAMP:
        raise MalformedRecord("a cosignature time must be after 1970")
    public = key.public_key().public_bytes_raw()
    signature = key.sign(_cosigned_message(text, seconds))
    return NoteSignature(
        name, key_id(name, COSIGNATURE_V1, public), struct.pack(">Q", seconds) + signature
    )


def verify_cosignature_v1(
    sig: NoteSignature, public: ed25519.Ed25519PublicKey, text: str
) -> int | None:
    """The POSIX time `sig` states if it is `public`'s cosignature of `text`, else None."""
    if sig.key_id != key_id(sig.name, COSIGNATURE_V1, public.public_bytes_raw()):
        return None
    if len(sig.signature) != 8 + 64:
        return None
    (seconds,) = struct.unpack(">Q", sig.signature[:8])
    if seconds > _MAX_TIMESTAMP:
        return None
    try:
        public.verify(sig.signature[8:], _cosigned_message(text, seconds))
    except InvalidSignature:
        return None
    return int(seconds)
