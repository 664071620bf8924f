"""SCRAM's salted password, derived once per process instead of once per connection.

SCRAM (RFC 5802) has the client derive SaltedPassword = PBKDF2(password, salt,
iterations) on every authentication; Kafka's salt and iteration count are the
principal's, fixed until its credentials change. aiokafka derives it again on
every connection, and each client makes two (bootstrap, then the broker): at
4096 rounds of SHA-512 that is about 3 ms of the event loop's time a
connection, some 30 ms of a `jcu publish` before its first object.

`remember_salted_passwords()` makes aiokafka's SCRAM authenticator keep what it
derived for the same (hash, password, salt, iterations) in this process. Only
the password-equivalent the process already holds is kept (its password is in
its `KafkaConnection`); every authentication still answers the server's fresh
nonce with a fresh proof and checks the server's signature. The cache is
bounded, so a server sending a new salt each time cannot grow it. Like
`decompression.limit_decompression`, this changes an aiokafka class for the whole
process and is done explicitly, never at import: by every client
`broker.kafka.clients` makes with SCRAM credentials.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

#: Distinct (hash, password, salt, iterations) kept at most: one per principal in practice.
_LIMIT = 16
_salted: dict[tuple[str, bytes, bytes, int], bytes] = {}
_lock = threading.Lock()
_installed = False


def salted_password(hash_name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    """PBKDF2-HMAC(`hash_name`) of `password`, derived once per process for these inputs."""
    key = (hash_name, password, salt, iterations)
    with _lock:
        known = _salted.get(key)
    if known is not None:
        return known
    derived = hashlib.pbkdf2_hmac(hash_name, password, salt, iterations)
    with _lock:
        if len(_salted) >= _LIMIT:
            _salted.clear()
        _salted[key] = derived
    return derived


def forget_salted_passwords() -> None:
    """Drop what was derived (a principal's credentials changed; tests)."""
    with _lock:
        _salted.clear()


def remember_salted_passwords() -> None:
    """Have aiokafka's SCRAM authenticator use `salted_password` (once per process)."""
    global _installed
    if _installed:
        return
    from aiokafka.conn import ScramAuthenticator

    def create_salted_password(self: Any, salt: bytes, iterations: int) -> None:
        self._salted_password = salted_password(
            self._hashname, self._sasl_plain_password, salt, iterations
        )

    ScramAuthenticator.create_salted_password = create_salted_password
    _installed = True
