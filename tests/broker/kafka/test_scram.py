"""SCRAM's salted password is derived once a process for one principal, and the exchange
aiokafka makes with it is the one RFC 5802 defines (no Kafka: the server's side computed here)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.conn import ScramAuthenticator

from broker.kafka import scram

#: PBKDF2 itself, for what the server computes here (the fixture counts the client's).
_PBKDF2 = hashlib.pbkdf2_hmac


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """The salts PBKDF2 runs for, from a fresh cache; aiokafka's class restored afterwards."""
    monkeypatch.setattr(
        ScramAuthenticator, "create_salted_password", ScramAuthenticator.create_salted_password
    )
    monkeypatch.setattr(scram, "_installed", False)
    scram.forget_salted_passwords()
    seen: list[bytes] = []

    def counting(name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
        seen.append(salt)
        return _PBKDF2(name, password, salt, iterations)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counting)
    yield seen
    scram.forget_salted_passwords()


def test_the_same_inputs_are_derived_once_and_give_pbkdf2s_answer(derivations: list[bytes]) -> None:
    first = scram.salted_password("sha512", b"pw", b"salt-1", 4096)
    again = scram.salted_password("sha512", b"pw", b"salt-1", 4096)
    assert first == again == _PBKDF2("sha512", b"pw", b"salt-1", 4096)
    assert derivations == [b"salt-1"]


def test_another_salt_password_or_count_is_derived_again(derivations: list[bytes]) -> None:
    base = scram.salted_password("sha512", b"pw", b"salt-1", 4096)
    assert scram.salted_password("sha512", b"pw", b"salt-2", 4096) != base
    assert scram.salted_password("sha512", b"other", b"salt-1", 4096) != base
    assert scram.salted_password("sha512", b"pw", b"salt-1", 8192) != base
    assert scram.salted_password("sha256", b"pw", b"salt-1", 4096) != base
    assert len(derivations) == 5


def test_a_server_sending_new_salts_cannot_grow_the_cache(derivations: list[bytes]) -> None:
    for i in range(scram._LIMIT * 3):
        scram.salted_password("sha512", b"pw", f"salt-{i}".encode(), 1)
    assert len(scram._salted) <= scram._LIMIT


def _exchange(password: str, salt: bytes, iterations: int) -> tuple[Any, bytes, bytes]:
    """One client's SCRAM-SHA-512 exchange up to its proof: (authenticator, the proof it
    sent, the proof RFC 5802 asks of that password)."""
    auth: Any = ScramAuthenticator(
        loop=None,
        sasl_plain_password=password,
        sasl_plain_username="soc-fr",
        sasl_mechanism="SCRAM-SHA-512",
    )
    client_first = auth.first_message()
    nonce = client_first.split("r=", 1)[1] + "server-part"
    server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={iterations}"
    auth.process_server_first_message(server_first)
    sent = base64.b64decode(auth.final_message().split("p=", 1)[1])
    # The server's side: what it stores (from the password) and checks the proof against.
    salted = _PBKDF2("sha512", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha512).digest()
    stored = hashlib.sha512(client_key).digest()
    message = f"{client_first[3:]},{server_first},c=biws,r={nonce}".encode()
    signature = hmac.new(stored, message, hashlib.sha512).digest()
    expected = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    return auth, sent, expected


def test_aiokafka_derives_once_for_many_connections_and_proves_the_password(
    derivations: list[bytes],
) -> None:
    scram.remember_salted_passwords()
    for _ in range(3):  # three connections of one principal
        _, sent, expected = _exchange("kafka-password", b"principal-salt", 4096)
        assert sent == expected
    assert derivations == [b"principal-salt"]


def test_a_wrong_password_is_not_answered_from_the_cache(derivations: list[bytes]) -> None:
    scram.remember_salted_passwords()
    _exchange("kafka-password", b"principal-salt", 4096)
    _, sent, _ = _exchange("another-password", b"principal-salt", 4096)
    _, _, right = _exchange("kafka-password", b"principal-salt", 4096)
    assert sent != right
    assert len(derivations) == 2
