"""Login sessions: a signed, expiring cookie naming the viewer; the key lives only in memory.

The cookie holds the account name, role, organisation, how the viewer signed
in (password or its node's key) and expiry, and an
HMAC-SHA256 over them under a per-process random key: it cannot be forged
or altered, and restarting the console ends every session. No password or
key is ever in it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

from connectors.console.access import ROLES, VIAS, Viewer

COOKIE = "jcu_console"
#: A session lasts a working shift.
LIFETIME = 12 * 3600


class Sessions:
    def __init__(self, lifetime: int = LIFETIME) -> None:
        self._key = secrets.token_bytes(32)
        self.lifetime = lifetime

    def _mac(self, body: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).decode()

    def issue(self, viewer: Viewer, now: float | None = None) -> str:
        exp = int((now or time.time()) + self.lifetime)
        body = json.dumps(
            [viewer.user, viewer.role, viewer.org, viewer.via, viewer.key_id, exp]
        ).encode()
        return f"{base64.urlsafe_b64encode(body).decode()}.{self._mac(body)}"

    def read(self, cookie: str | None, now: float | None = None) -> Viewer | None:
        if not cookie or "." not in cookie:
            return None
        raw, _, mac = cookie.rpartition(".")
        try:
            body = base64.urlsafe_b64decode(raw.encode())
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            user, role, org, via, key_id, exp = json.loads(body)
        except (ValueError, TypeError):
            return None
        if role not in ROLES or via not in VIAS:
            return None
        if not isinstance(exp, int) or exp < (now or time.time()):
            return None
        return Viewer(str(user), role, org, via, key_id)
