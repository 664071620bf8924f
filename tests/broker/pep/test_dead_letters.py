"""Dead letters as `jcu dlq` reads them: headers parsed, ids checked, what a replay gets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from broker.errors import ConfigError
from broker.pep.dead_letters import dead_letter_of, held_record, parse_id


@dataclass
class _Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int | None = 1_780_000_000_000


def _letter(**headers: bytes) -> _Record:
    """A dead letter as the subscriber writes it; `jcu_claimed_sender=` is the header
    `jcu.claimed-sender` (the first underscore a dot, the others dashes)."""
    base = {
        "jcu.reason": b"bad-signature",
        "jcu.error": b"the signature does not verify",
        "jcu.participant": b"enisa",
        "jcu.source": b"jcu.civilian.indicators:2:41",
        "jcu.sha256": b"ab" * 32,
        "jcu.size": b"5",
    }
    base.update({k.replace("_", ".", 1).replace("_", "-"): v for k, v in headers.items()})
    return _Record(0, 7, b"m-1", b"\x00abcd", list(base.items()))


def test_a_dead_letter_says_why_where_and_who() -> None:
    letter = dead_letter_of(_letter(jcu_claimed_sender=b"soc-fr"))
    assert letter.id == "0:7" and letter.reason == "bad-signature"
    assert letter.source == ("jcu.civilian.indicators", 2, 41)
    assert (letter.sender, letter.sender_verified) == ("soc-fr", False)
    assert letter.time == datetime.fromtimestamp(1_780_000_000, UTC)
    shown = letter.to_json()
    assert shown["kept"] and "value" not in shown  # never the content


def test_a_verified_sender_is_said_so() -> None:
    letter = dead_letter_of(_letter(jcu_sender=b"soc-fr", jcu_reason=b"unauthorised"))
    assert (letter.sender, letter.sender_verified) == ("soc-fr", True)


def test_a_replay_gets_the_original_key_and_append_time_when_kept() -> None:
    kept = held_record(dead_letter_of(_letter(jcu_key=b"thread-9", jcu_appended=b"1770000000000")))
    assert (kept.topic, kept.partition, kept.offset) == ("jcu.civilian.indicators", 2, 41)
    assert (kept.key, kept.timestamp, kept.refused_as) == (
        b"thread-9",
        1770000000000,
        "bad-signature",
    )
    # Without them: the message id, and the dead letter's own (later: never more lenient) time.
    old = held_record(dead_letter_of(_letter()))
    assert (old.key, old.timestamp) == (b"m-1", 1_780_000_000_000)


def test_a_letter_kept_as_digest_only_cannot_be_replayed() -> None:
    record = _letter()
    record.value = None
    with pytest.raises(ConfigError, match="kept only the digest"):
        held_record(dead_letter_of(record))


@pytest.mark.parametrize("text", ["7", "a:b", "0:7:1", "-1:3", ""])
def test_an_id_is_partition_colon_offset(text: str) -> None:
    with pytest.raises(ConfigError, match="not a dead-letter id"):
        parse_id(text)
    assert parse_id(" 3:14 ") == (3, 14)
