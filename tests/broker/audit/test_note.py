"""The C2SP signed-note, tlog-checkpoint and tlog-cosignature formats, as the specs and their
published examples say (c2sp.org/signed-note, /tlog-checkpoint, /tlog-cosignature).

External anchors: the example note of golang.org/x/mod/sumdb/note (its key pair and
signature), and a checkpoint of a public log cosigned by a public witness
(remora.n621.de, cosignature/v1); their texts and keys are facts, copied as data.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit._note import (
    COSIGNATURE_V1,
    ED25519,
    Note,
    NoteSignature,
    cosign_v1,
    key_id,
    parse_note,
    sign_ed25519,
    verify_cosignature_v1,
    verify_ed25519,
)
from broker.audit.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    cosign,
    sign_checkpoint,
    witness_name,
)
from broker.errors import MalformedRecord

# golang.org/x/mod/sumdb/note, its package documentation's example.
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_NOTE = (
    PETER_TEXT
    + "\n— PeterNeumann "
    + "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
    + "\n"
)
# A public CT log's checkpoint with witnesses' cosignatures, and one witness's key.
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
COSIGNED_TEXT = (
    "arche2025h1.staging.ct.transparency.dev\n"
    "1432088532\n"
    "U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n"
)
COSIGNED_NOTE = COSIGNED_TEXT + (
    "\n"
    "— transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYT"
    "zwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==\n"
    "— remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIob"
    "WX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==\n"
)


def _vkey(vkey: str) -> tuple[str, bytes, int, bytes]:
    """name, key hash, type, raw key of a verifier key `name+hash+base64(type||key)`."""
    name, hash_hex, material = vkey.split("+", 2)
    raw = base64.b64decode(material)
    return name, bytes.fromhex(hash_hex), raw[0], raw[1:]


def test_key_ids_are_what_the_published_keys_say() -> None:
    for vkey in (
        PETER_VKEY,
        REMORA_VKEY,
        "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
    ):
        name, expected, kind, raw = _vkey(vkey)
        assert key_id(name, kind, raw) == expected, vkey
    # the formula, written out apart from the code
    name, _, kind, raw = _vkey(PETER_VKEY)
    assert kind == ED25519 and _vkey(REMORA_VKEY)[2] == COSIGNATURE_V1
    assert hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4] == key_id(name, 1, raw)


def test_the_go_example_note_signs_and_verifies_byte_for_byte() -> None:
    name, _, _, public_raw = _vkey(PETER_VKEY)
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    assert key.public_key().public_bytes_raw() == public_raw
    signed = Note(PETER_TEXT, (sign_ed25519(key, name, PETER_TEXT),))
    assert signed.encode() == PETER_NOTE  # Ed25519 is deterministic
    parsed = parse_note(PETER_NOTE)
    assert parsed.text == PETER_TEXT and parsed == signed
    public = ed25519.Ed25519PublicKey.from_public_bytes(public_raw)
    (sig,) = parsed.signatures
    assert verify_ed25519(sig, public, parsed.text)
    assert not verify_ed25519(sig, public, parsed.text.replace("cryptography", "cryptographY"))


def test_a_published_cosignature_verifies() -> None:
    name, _, _, raw = _vkey(REMORA_VKEY)
    public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    note = parse_note(COSIGNED_NOTE)
    assert note.text == COSIGNED_TEXT
    (sig,) = [s for s in note.signatures if s.name == name]
    seconds = verify_cosignature_v1(sig, public, note.text)
    assert seconds == struct.unpack(">Q", sig.signature[:8])[0] and seconds > 1_700_000_000
    assert verify_cosignature_v1(sig, public, note.text.replace("1432088532", "1432088533")) is None
    other = next(s for s in note.signatures if s.name != name)
    assert verify_cosignature_v1(other, public, note.text) is None  # not its key


def test_our_cosignature_is_the_spec_s_message() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    text = "example.com/log\n7\n" + base64.b64encode(bytes(32)).decode() + "\n"
    sig = cosign_v1(key, "w.example/x", text, 1679315147)
    assert sig.signature[:8] == (1679315147).to_bytes(8, "big")
    key.public_key().verify(sig.signature[8:], b"cosignature/v1\ntime 1679315147\n" + text.encode())
    assert verify_cosignature_v1(sig, key.public_key(), text) == 1679315147


# -- parsing: strict ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "note",
    [
        "no blank line\n— a AAAAAAAAAAA=\n",
        "text\n\n",  # no signature
        "text\n\n— a AAAAAAAAAAA=",  # no final newline
        "text\n\n- a AAAAAAAAAAA=\n",  # a hyphen, not an em dash
        "text\n\n— a b AAAAAAAAAAA=\n",  # a space in the name
        "text\n\n— a+b AAAAAAAAAAA=\n",  # a plus in the name
        "text\n\n—  AAAAAAAAAAA=\n",  # no name
        "text\n\n— a AAAA\n",  # too short for a key id and a signature
        "text\n\n— a not*base64\n",
        "text\n\n— a AAAAAAAAAAA\n",  # unpadded
        "text\x07\n\n— a AAAAAAAAAAA=\n",  # a control character
        "text\n\n" + "— a AAAAAAAAAAA=\n" * 65,  # more than this verifier takes
    ],
)
def test_what_is_not_a_note_is_refused(note: str) -> None:
    with pytest.raises(MalformedRecord):
        parse_note(note)


def test_the_text_ends_at_the_last_blank_line() -> None:
    """What looks like a signature before the last blank line is text (signed-note)."""
    note = parse_note("text\n\n— a AAAAAAAAAAA=\n\n— b AAAAAAAAAAA=\n")
    assert note.text == "text\n\n— a AAAAAAAAAAA=\n"
    assert [s.name for s in note.signatures] == ["b"]


def test_a_note_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(MalformedRecord, match="UTF-8"):
        parse_note(b"caf\xe9\n\n\xe2\x80\x94 a AAAAAAAAAAA=\n")


names = st.text(
    alphabet=st.characters(
        blacklist_categories=("Zs", "Cc", "Cs", "Zl", "Zp"), blacklist_characters="+"
    ),
    min_size=1,
    max_size=20,
)
texts = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=40), max_size=5
).map(lambda lines: "".join(f"{line}\n" for line in lines) or "\n")
signature_lines = st.builds(
    NoteSignature, names, st.binary(min_size=4, max_size=4), st.binary(min_size=1, max_size=80)
)


@settings(max_examples=300, deadline=None)
@given(text=texts, sigs=st.lists(signature_lines, min_size=1, max_size=16))
def test_any_note_reads_back_as_it_was_written(text: str, sigs: list[NoteSignature]) -> None:
    note = Note(text, tuple(sigs))
    assert parse_note(note.encode()) == note
    assert parse_note(note.encode().encode()) == note


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_are_refused_cleanly(data: bytes) -> None:
    try:
        note = parse_note(data)
    except MalformedRecord:
        return
    assert note.encode().encode() == data  # what parses is exactly what it says


# -- checkpoints ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    side=st.sampled_from(("publish", "receive", "seal", "control")),
    size=st.integers(0, 2**62),
    root=st.binary(min_size=32, max_size=32),
    millis=st.integers(0, 4_102_444_800_000),
)
def test_a_checkpoint_reads_back_as_it_was_signed(
    side: str, size: int, root: bytes, millis: int
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    signed = sign_checkpoint(key, f"cert-eu/{side}", size, root, when)
    witness = ed25519.Ed25519PrivateKey.generate()
    both = signed.with_signatures([cosign(witness, witness_name("enisa"), signed.checkpoint)])
    back = SignedCheckpoint.parse(both.note())
    assert back == both
    assert back.log_key([witness.public_key(), key.public_key()]) == key.public_key()
    assert back.cosignature_by("enisa/witness", [witness.public_key()]) is not None
    assert back.cosignature_by("enisa/witness", [key.public_key()]) is None


def test_the_checkpoint_text_is_the_tlog_checkpoint_layout() -> None:
    cp = Checkpoint("cert-eu/publish", 20852163, bytes(range(32)), datetime(2026, 1, 2, tzinfo=UTC))
    assert cp.body().decode() == (
        "cert-eu/publish\n20852163\n" + base64.b64encode(bytes(range(32))).decode() + "\n"
        "time-ms 1767312000000\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        # a leading zero
        "cert-eu/publish\n020\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime-ms 1\n",
        "cert-eu/publish\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime-ms 1\n",
        "cert-eu/publish\n20\nAAAA\ntime-ms 1\n",  # not 32 bytes
        "cert-eu/publish\n20\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # no time
        "cert-eu/publish\n20\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime 1\n",
        "cosignature/v1\ntime 5\ncert-eu/publish\n20\n",  # a cosigned message is no checkpoint
        "noslash\n20\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime-ms 1\n",
    ],
)
def test_what_is_not_a_checkpoint_is_refused(text: str) -> None:
    with pytest.raises(MalformedRecord):
        Checkpoint.from_body(text)


def test_a_known_key_whose_signature_fails_fails_the_checkpoint() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    signed = sign_checkpoint(key, "cert-eu/publish", 3, bytes(32))
    (sig,) = signed.signatures
    broken = SignedCheckpoint(signed.checkpoint, (NoteSignature(sig.name, sig.key_id, bytes(64)),))
    assert broken.log_key([key.public_key()]) is None
    stranger = ed25519.Ed25519PrivateKey.generate()
    assert signed.log_key([stranger.public_key()]) is None  # unknown keys are ignored
