"""Message ids derived from what a message is, so a re-publication is recognised.

A record made from a source object (a STIX object, a MISP event, a CSV row)
gets the message id

    id = UUIDv8(HMAC-SHA256(k, lp("jcu-broker/message-id/v1", sender, source id, version))[:16])

(`lp`: each part with a 2-byte length prefix; the UUID's version and variant
bits set as RFC 9562 says for version 8). The same object at the same version,
published again by the same sender (a re-run after a crash, the same bundle
dropped twice), gets the same id: the sender's sent index skips it, and every
receiver's delivery ledger refuses a second copy as a replay. A new version
(STIX `modified`, MISP `timestamp`, a changed CSV row) is a new id.

The key `k` is a secret of the sender's node (HKDF from its audit master
secret, `broker.audit.keys`), never the content alone: a plain hash of
"sender + indicator" would let anyone who reads the topic confirm a guessed
RED indicator from the id in the clear header. The same key names a CSV row by
its content (`row_key`) in the node's own index, for the same reason.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from broker.pep.sent import SourceRef

_DOMAIN = b"jcu-broker/message-id/v1"
_ROW_DOMAIN = b"jcu-broker/source-row/v1"


def _lp(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)


class MessageIds:
    """Derives the message id of a source object's publication by one sender."""

    __slots__ = ("_key", "_sender")

    def __init__(self, sender: str, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a message-id key is at least 32 bytes")
        self._sender = sender.encode()
        self._key = key

    def __repr__(self) -> str:  # never the key
        return f"MessageIds(sender={self._sender.decode()!r})"

    def of(self, source: SourceRef) -> str:
        """The message id of `source` (its id and version; the container does not count:
        one object version is one message, whichever bundle carried it)."""
        mac = hmac.digest(
            self._key,
            _lp(_DOMAIN, self._sender, source.id.encode(), (source.version or "").encode()),
            hashlib.sha256,
        )
        raw = bytearray(mac[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
        return str(uuid.UUID(bytes=bytes(raw)))

    def row_key(self, scope: str, normalised: str) -> str:
        """A keyed name for a row of content (a CSV row in the file `scope` names): equal
        rows of one scope get equal names, and the name confirms no guess of the row."""
        mac = hmac.digest(
            self._key, _lp(_ROW_DOMAIN, scope.encode(), normalised.encode()), hashlib.sha256
        )
        return mac[:16].hex()
