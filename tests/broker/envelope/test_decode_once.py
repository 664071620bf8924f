"""A receiver decodes an envelope once: `decode_envelope` for routing, then `Opener.open(decoded=)`.

Opening with the routing decode must behave exactly as opening the bytes alone:
same message, and for every tampered field the same error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from broker.envelope import read_header
from broker.envelope.header import decode_envelope
from broker.errors import MalformedRecord, Rejected
from broker.schemas import SchemaStore
from tests.broker._pki import Pki
from tests.broker.envelope.test_tamper import MUTATIONS, TOPIC, _decode, _reencode, _seal


class _CountingStore:
    """The schema store, counting how often each type is decoded."""

    def __init__(self, store: SchemaStore) -> None:
        self._store = store
        self.decoded: list[str] = []

    def decode(self, data: bytes, expected: str | None = None) -> tuple[str, dict[str, Any]]:
        name, rec = self._store.decode(data, expected)
        self.decoded.append(name.rpartition(".")[2])
        return name, rec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_decode_envelope_gives_the_record_and_the_header_read_header_gives(pki: Pki) -> None:
    data = _seal(pki)
    env = decode_envelope(pki.store, data)
    assert env.data is data
    assert env.record == _decode(pki, data)
    assert env.header == read_header(pki.store, data)


def test_open_with_the_routing_decode_decodes_the_envelope_only_once(pki: Pki) -> None:
    data = _seal(pki)
    counting = _CountingStore(pki.store)
    opener = pki.opener("eda")
    opener._store = counting  # type: ignore[assignment]
    env = decode_envelope(counting, data)  # type: ignore[arg-type]
    opened = opener.open(data, topic=TOPIC, decoded=env)
    assert counting.decoded == ["Envelope", "Indicator"]
    assert opened.header is env.header
    assert opened == pki.opener("eda").open(data, topic=TOPIC)


def test_a_decode_of_other_bytes_is_ignored(pki: Pki) -> None:
    data, other = _seal(pki), _seal(pki)
    opened = pki.opener("eda").open(data, topic=TOPIC, decoded=decode_envelope(pki.store, other))
    assert opened == pki.opener("eda").open(data, topic=TOPIC)
    assert opened.message_id != read_header(pki.store, other).message_id


@pytest.mark.parametrize(
    ("field", "mutate", "error"),
    MUTATIONS,
    ids=[f"{i}-{m[0]}-{m[2].__name__}" for i, m in enumerate(MUTATIONS)],
)
def test_a_tampered_record_opened_with_its_routing_decode_fails_as_without(
    pki: Pki, field: str, mutate: Callable[[dict[str, Any], Pki], None], error: type[Rejected]
) -> None:
    rec = _decode(pki, _seal(pki))
    mutate(rec, pki)
    data = _reencode(pki, rec)
    try:
        env = decode_envelope(pki.store, data)
    except MalformedRecord:
        return  # the receiver refuses it before opening, as it did with read_header
    with pytest.raises(error) as caught:
        pki.opener("eda").open(data, topic=TOPIC, decoded=env)
    assert type(caught.value) is error
