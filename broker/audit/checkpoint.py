"""Signed checkpoints: an enforcement point's statement "my tree had N leaves and this root".

The signed bytes are a checkpoint note body in the style of the transparency-log
checkpoint format (C2SP tlog-checkpoint): the origin line, the tree size in
decimal, the root in base64, then one extension line with the time:

    cert-eu/publish
    1000
    Lx0...=
    time 1764284400000

Ed25519 over that body. The text form keeps what is signed unambiguous and
readable; the key id is the broker-wide one (`broker.trust.material.key_id`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.clock import to_millis, utc_now
from broker.trust.material import SIGNING_ALGORITHM, key_id


def ed25519_key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    return key_id(SIGNING_ALGORITHM, public_key.public_bytes_raw())


def note_body(origin: str, tree_size: int, root_hash: bytes, time: datetime) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    if "\n" in origin or not origin:
        raise ValueError("a checkpoint origin is one non-empty line")
    millis = int(to_millis(time).timestamp() * 1000)
    root_b64 = base64.b64encode(root_hash).decode("ascii")
    return f"{origin}\n{tree_size}\n{root_b64}\ntime {millis}\n".encode()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    time: datetime
    key_id: str
    signature: bytes

    @classmethod
    def sign(
        cls,
        key: ed25519.Ed25519PrivateKey,
        origin: str,
        tree_size: int,
        root_hash: bytes,
        time: datetime | None = None,
    ) -> Checkpoint:
        t = to_millis(time or utc_now())
        signature = key.sign(note_body(origin, tree_size, root_hash, t))
        return cls(origin, tree_size, root_hash, t, ed25519_key_id(key.public_key()), signature)

    def body(self) -> bytes:
        return note_body(self.origin, self.tree_size, self.root_hash, self.time)

    def verify(self, accepted: Iterable[ed25519.Ed25519PublicKey]) -> bool:
        """True if one of the accepted keys signed this checkpoint."""
        body = self.body()
        for public in accepted:
            if ed25519_key_id(public) != self.key_id:
                continue
            try:
                public.verify(self.signature, body)
            except InvalidSignature:
                return False
            return True
        return False
