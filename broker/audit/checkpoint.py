"""Checkpoints: "my tree had N leaves and this root", as a C2SP signed note, and witnessed.

The note text is a transparency-log checkpoint (c2sp.org/tlog-checkpoint):
the origin (the enforcement point id), the tree size in decimal, the root in
base64, and one extension line with the time the enforcement point signed it,
in milliseconds since the epoch (the verifier judges the signing key's
validity at that time):

    cert-eu/publish
    1000
    Lx0...=
    time-ms 1764284400000

    — cert-eu/publish AbCd...

The enforcement point signs with its participant's Ed25519 key as an ordinary
note signature (type 0x01), key name = origin. A witness adds a cosignature
(c2sp.org/tlog-cosignature, `cosignature/v1`, type 0x04) under the key name
`<participant>/witness`: eight bytes of POSIX time, then Ed25519 over
"cosignature/v1", "time <seconds>" and the note text. Its statement: this is
the largest tree of that origin the witness has seen, consistent with every
earlier one it has seen.

Domain separation of the participant key's uses: envelopes, batch roots and
control records carry their own prefixes; a checkpoint's signed text starts
with its origin, which is always `<participant>/<side>`, never
"cosignature/v1", so a cosignature cannot pass for a checkpoint or the reverse.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit._note import (
    ED25519,
    Note,
    NoteSignature,
    check_key_name,
    check_text,
    cosign_v1,
    key_id,
    parse_note,
    sign_ed25519,
    verify_cosignature_v1,
    verify_ed25519,
)
from broker.clock import to_millis, utc_now
from broker.errors import MalformedRecord
from broker.trust.material import SIGNING_ALGORITHM
from broker.trust.material import key_id as broker_key_id

WITNESS_SIDE = "witness"
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_TIME_LINE = "time-ms "


def ed25519_key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    """The broker-wide id of an Ed25519 key (as the registry names it)."""
    return broker_key_id(SIGNING_ALGORITHM, public_key.public_bytes_raw())


def witness_name(participant: str) -> str:
    """The key name a participant cosigns checkpoints under."""
    return f"{participant}/{WITNESS_SIDE}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _millis(t: datetime) -> int:
    """Milliseconds since the epoch, in integers (a float timestamp loses some)."""
    return (to_millis(t) - _EPOCH) // _MS


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: origin, size, root, and when the enforcement point signed it."""

    origin: str
    tree_size: int
    root_hash: bytes
    time: datetime

    def __post_init__(self) -> None:
        check_key_name(self.origin)  # the origin is the log's key name too
        if "/" not in self.origin:
            raise MalformedRecord(f"checkpoint origin {self.origin!r} is not <participant>/<side>")
        if self.tree_size < 0 or len(self.root_hash) != 32:
            raise MalformedRecord("a checkpoint has a size >= 0 and a 32-byte root")

    def body(self) -> bytes:
        """The note text: what the enforcement point and the witnesses sign."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        time = f"{_TIME_LINE}{_millis(self.time)}"
        return f"{self.origin}\n{self.tree_size}\n{root}\n{time}\n".encode()

    @classmethod
    def from_body(cls, text: str) -> Checkpoint:
        check_text(text)
        lines = text[:-1].split("\n")
        if len(lines) != 4 or not all(lines):
            raise MalformedRecord("checkpoint text is not four lines: origin, size, root, time-ms")
        origin, size, root, time = lines
        if not _DECIMAL.fullmatch(size) or len(size) > 19:
            raise MalformedRecord(f"checkpoint size {size[:20]!r} is not a decimal number")
        try:
            root_hash = base64.b64decode(root.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise MalformedRecord("checkpoint root is not base64") from None
        if base64.b64encode(root_hash).decode("ascii") != root:
            raise MalformedRecord("checkpoint root is not canonical base64")
        millis = time[len(_TIME_LINE) :]
        if not time.startswith(_TIME_LINE) or not _DECIMAL.fullmatch(millis) or len(millis) > 15:
            raise MalformedRecord(f"checkpoint time line {time[:30]!r} is not 'time-ms <millis>'")
        return cls(origin, int(size), root_hash, _EPOCH + int(millis) * _MS)


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A witness's verified cosignature: who, and when it says it saw the tree."""

    witness: str
    time: datetime


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint with its note signatures: the log's own and any witnesses'."""

    checkpoint: Checkpoint
    signatures: tuple[NoteSignature, ...]

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def tree_size(self) -> int:
        return self.checkpoint.tree_size

    @property
    def root_hash(self) -> bytes:
        return self.checkpoint.root_hash

    @property
    def time(self) -> datetime:
        return self.checkpoint.time

    def note(self) -> str:
        """The signed note, as C2SP writes it."""
        return Note(self.checkpoint.body().decode(), self.signatures).encode()

    @classmethod
    def parse(cls, data: str | bytes) -> SignedCheckpoint:
        note = parse_note(data)
        return cls(Checkpoint.from_body(note.text), note.signatures)

    def with_signatures(self, extra: Iterable[NoteSignature]) -> SignedCheckpoint:
        note = Note("", self.signatures).with_signatures(tuple(extra))
        return replace(self, signatures=note.signatures)

    def log_key(
        self, accepted: Iterable[ed25519.Ed25519PublicKey]
    ) -> ed25519.Ed25519PublicKey | None:
        """The accepted key whose signature under the origin's name verifies, if any.

        Signatures from unknown keys are ignored (C2SP); one from a known key
        that fails makes the whole checkpoint fail (None).
        """
        text = self.checkpoint.body().decode()
        mine = [s for s in self.signatures if s.name == self.origin]
        for public in accepted:
            for sig in mine:
                if _known(sig, public, self.origin):
                    # a known key whose signature fails: the whole note fails
                    return public if verify_ed25519(sig, public, text) else None
        return None

    def cosignature_by(
        self, name: str, accepted: Iterable[ed25519.Ed25519PublicKey]
    ) -> tuple[Cosignature, ed25519.Ed25519PublicKey] | None:
        """The verified cosignature of witness `name` under one of its accepted keys."""
        text = self.checkpoint.body().decode()
        for public in accepted:
            for sig in self.signatures:
                if sig.name != name:
                    continue
                seconds = verify_cosignature_v1(sig, public, text)
                if seconds is not None:
                    return Cosignature(name, datetime.fromtimestamp(seconds, UTC)), public
        return None

    def witness_names(self) -> tuple[str, ...]:
        """Names of the cosignature lines (unverified): `<participant>/witness`."""
        return tuple(dict.fromkeys(s.name for s in self.signatures if s.name != self.origin))


def _known(sig: NoteSignature, public: ed25519.Ed25519PublicKey, name: str) -> bool:
    """Whether `sig` names `public` (name and key id match a type 0x01 key)."""
    return sig.key_id == key_id(name, ED25519, public.public_bytes_raw())


def sign_checkpoint(
    key: ed25519.Ed25519PrivateKey,
    origin: str,
    tree_size: int,
    root_hash: bytes,
    time: datetime | None = None,
) -> SignedCheckpoint:
    """The enforcement point's checkpoint, signed under its origin's name."""
    cp = Checkpoint(origin, tree_size, root_hash, to_millis(time or utc_now()))
    return SignedCheckpoint(cp, (sign_ed25519(key, origin, cp.body().decode()),))


def cosign(
    key: ed25519.Ed25519PrivateKey, name: str, checkpoint: Checkpoint, time: datetime | None = None
) -> NoteSignature:
    """A `cosignature/v1` of `checkpoint` by witness `name`, timestamped (POSIX seconds)."""
    seconds = int((time or utc_now()).timestamp())
    return cosign_v1(key, name, checkpoint.body().decode(), seconds)
