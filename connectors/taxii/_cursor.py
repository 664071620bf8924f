"""`next` cursors: where a page ended, bound to the query that made it and signed.

A cursor is the last `date_added` of a page (the store walks its indexes from
there, so a deep page costs what the first does) with an HMAC-SHA256 tag under
the store's own key over that value and the request's path and filters. A
client cannot forge a position, nor reuse a cursor with other filters: both are
a 400, not a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

_TAG = 16
_FORMAT = ">q"


def _tag(key: bytes, scope: str, position: int) -> bytes:
    message = scope.encode() + b"\0" + struct.pack(_FORMAT, position)
    return hmac.new(key, message, hashlib.sha256).digest()[:_TAG]


def encode(key: bytes, scope: str, position: int) -> str:
    """The opaque `next` value for a page that ended at `position` (microseconds)."""
    raw = struct.pack(_FORMAT, position) + _tag(key, scope, position)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(key: bytes, scope: str, value: str) -> int:
    """The position in `value`; ValueError if this server did not issue it for `scope`."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("next is not a value this server returned") from None
    if len(raw) != struct.calcsize(_FORMAT) + _TAG:
        raise ValueError("next is not a value this server returned")
    (position,) = struct.unpack(_FORMAT, raw[:-_TAG])
    if not hmac.compare_digest(raw[-_TAG:], _tag(key, scope, position)):
        raise ValueError(
            "next is not a value this server returned for these filters:"
            " send it with the filters of the request that returned it"
        )
    return int(position)
