"""Content keys that may be reused, within bounds, for one recipient set.

Wrapping a fresh AES-256 key for every recipient of every message costs one
HPKE encapsulation per recipient per message (about 80 us for X25519, more for
the hybrid). A sender may instead reuse a content key for messages to exactly
the same recipient keys, at most `max_messages` times and for at most
`max_age`, after which a new key is drawn and wrapped again:

- reuse never widens access: the cache key is the exact set of
  (participant, KEM key id) pairs, so a different set, a rotated or a revoked
  key gives a new content key at once;
- it bounds exposure: a content key that leaks (for instance from a
  recipient's memory) opens at most `max_messages` messages from `max_age`;
- nonces never repeat: each content key has its own 64-bit counter, and the
  96-bit nonce is a random 32-bit salt drawn with the key || the counter, so
  two messages under one key can never share a nonce (no reliance on chance);
  the bound keeps far below AES-GCM's 2**32 invocation limit (NIST SP 800-38D).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: At most this many messages under one content key (see the module doc).
MAX_MESSAGES_PER_KEY = 1000
#: And for at most this long.
MAX_KEY_AGE = timedelta(minutes=10)
CONTENT_KEY_LEN = 32
CONTENT_KEY_ID_LEN = 16
NONCE_LEN = 12


@dataclass(slots=True)
class ContentKey:
    key: bytes
    key_id: bytes
    created: datetime
    salt: bytes
    wrapped: dict[str, bytes] = field(default_factory=dict)  # participant -> HPKE output
    used: int = 0
    aead: AESGCM = field(init=False, repr=False)  # built once: the key is reused

    def __post_init__(self) -> None:
        self.aead = AESGCM(self.key)

    def next_nonce(self) -> bytes:
        nonce = self.salt + self.used.to_bytes(8, "big")
        self.used += 1
        return nonce

    def __repr__(self) -> str:  # never show the key
        return f"ContentKey(id={self.key_id.hex()}, used={self.used})"


RecipientSet = frozenset[tuple[str, str]]


class ContentKeyCache:
    """Per-sender cache of content keys by recipient set; bounded by uses and age."""

    def __init__(
        self,
        *,
        max_messages: int = MAX_MESSAGES_PER_KEY,
        max_age: timedelta = MAX_KEY_AGE,
        max_sets: int = 256,
    ) -> None:
        if not 1 <= max_messages <= 2**32:
            raise ValueError("max_messages must be between 1 and 2**32")
        self.max_messages = max_messages
        self.max_age = max_age
        self._max_sets = max_sets
        self._keys: dict[RecipientSet, ContentKey] = {}

    def key_for(
        self, recipients: Iterable[tuple[str, str]], now: datetime
    ) -> tuple[ContentKey, bool]:
        """A content key for these (participant, key id) pairs; True when it is new."""
        rset: RecipientSet = frozenset(recipients)
        ck = self._keys.get(rset)
        if ck is not None and ck.used < self.max_messages and now - ck.created < self.max_age:
            return ck, False
        ck = ContentKey(
            key=os.urandom(CONTENT_KEY_LEN),
            key_id=os.urandom(CONTENT_KEY_ID_LEN),
            created=now,
            salt=os.urandom(NONCE_LEN - 8),
        )
        if len(self._keys) >= self._max_sets:
            self._keys.pop(next(iter(self._keys)))
        self._keys[rset] = ck
        return ck, True
