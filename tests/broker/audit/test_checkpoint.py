"""A checkpoint's text is read strictly: one spelling per tree head, or refused.

Two texts for one tree head would be two signed notes a verifier or a witness
could disagree about; each rule below is met alone, beside the canonical text.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from broker.audit.checkpoint import Checkpoint
from broker.errors import MalformedRecord

ROOT = bytes(range(32))
CANONICAL = Checkpoint("cert-eu/publish", 7, ROOT, datetime(2026, 11, 27, 12, tzinfo=UTC))


def _text(size: str = "7", root: str | None = None, time: str | None = None) -> str:
    lines = CANONICAL.body().decode().split("\n")
    return "\n".join(["cert-eu/publish", size, root or lines[2], time or lines[3], ""])


def test_the_canonical_text_reads_back() -> None:
    assert Checkpoint.from_body(_text()) == CANONICAL
    assert Checkpoint.from_body(CANONICAL.body().decode()) == CANONICAL


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(MalformedRecord, match="size >= 0"):
        Checkpoint("cert-eu/publish", -1, ROOT, CANONICAL.time)


def test_a_size_beyond_19_digits_is_refused() -> None:
    assert Checkpoint.from_body(_text(size="9" * 19)).tree_size == 10**19 - 1
    with pytest.raises(MalformedRecord, match="not a decimal number"):
        Checkpoint.from_body(_text(size="1" + "0" * 19))


def test_a_root_in_non_canonical_base64_is_refused() -> None:
    """Base64 of 32 bytes leaves two spare bits in its last character: setting them spells
    the same root another way."""
    canonical = base64.b64encode(ROOT).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = canonical[-2]
    other = canonical[:-2] + alphabet[alphabet.index(last) | 1] + "="
    assert other != canonical and base64.b64decode(other) == ROOT
    with pytest.raises(MalformedRecord, match="canonical"):
        Checkpoint.from_body(_text(root=other))


@pytest.mark.parametrize(
    "time",
    [
        "time-xx 1795780800000",  # another label of the same length
        "time-ms 01795780800000",  # a leading zero
        "time-ms 1795780800000.0",  # not an integer
        "time-ms 9" + "0" * 15,  # 16 digits: past any datetime
    ],
    ids=["label", "leading-zero", "not-integer", "16-digits"],
)
def test_a_time_line_other_than_time_ms_and_up_to_15_digits_is_refused(time: str) -> None:
    with pytest.raises(MalformedRecord, match="time line"):
        Checkpoint.from_body(_text(time=time))
