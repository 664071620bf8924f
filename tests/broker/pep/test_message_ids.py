"""Message ids derived from a source object: stable per sender, object and version; keyed,
so an id confirms no guess of the content; shaped as the envelope's UUID requires."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.pep.message_ids import MessageIds
from broker.pep.sent import SourceRef

KEY = bytes(range(32))
CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

texts = st.text(min_size=1, max_size=80)


@given(texts, st.one_of(st.none(), texts))
def test_the_same_object_version_gets_the_same_canonical_uuid8(
    sid: str, version: str | None
) -> None:
    ref = SourceRef(sid, version, "bundle--a")
    mid = MessageIds("soc-fr", KEY).of(ref)
    assert mid == MessageIds("soc-fr", KEY).of(SourceRef(sid, version, "bundle--b"))
    assert CANONICAL.fullmatch(mid) and str(uuid.UUID(mid)) == mid
    assert uuid.UUID(mid).version == 8


@given(texts, texts, texts)
def test_another_version_sender_or_key_is_another_id(sid: str, v1: str, v2: str) -> None:
    ids = MessageIds("soc-fr", KEY)
    if v1 != v2:
        assert ids.of(SourceRef(sid, v1)) != ids.of(SourceRef(sid, v2))
    assert ids.of(SourceRef(sid, v1)) != MessageIds("cert-eu", KEY).of(SourceRef(sid, v1))
    other_node = MessageIds("soc-fr", bytes(32))
    assert ids.of(SourceRef(sid, v1)) != other_node.of(SourceRef(sid, v1))


def test_parts_cannot_be_shifted_between_id_and_version() -> None:
    ids = MessageIds("soc-fr", KEY)
    assert ids.of(SourceRef("ab", "c")) != ids.of(SourceRef("a", "bc"))
    assert ids.of(SourceRef("a", None)) == ids.of(SourceRef("a", ""))


def test_a_guessed_indicator_is_not_confirmed_without_the_node_key() -> None:
    """Whoever reads the topic knows the sender and can guess the row: without the node's
    key, every guess gives an id unlike the one on the topic."""
    row = '{"type":"ipv4-addr","value":"198.51.100.7"}'
    real = MessageIds("soc-fr", KEY)
    on_topic = real.of(SourceRef(f"row:{real.row_key('iocs.csv', row)}", None, "iocs.csv"))
    guesser = MessageIds("soc-fr", b"\x01" * 32)
    guess = guesser.of(SourceRef(f"row:{guesser.row_key('iocs.csv', row)}", None, "iocs.csv"))
    assert guess != on_topic
    assert "198.51.100.7" not in repr(real) and KEY.hex() not in repr(real)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        MessageIds("soc-fr", b"short")
