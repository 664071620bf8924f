"""The plaintext of a format-2 envelope, `eu.jcu.v1.SealedContent`, without fastavro per message.

SealedContent is {payload: bytes, labels: Labels}, so its single-object encoding is

    C3 01 || fingerprint(SealedContent) || long(len(payload)) || payload || labels

with `payload` the payload's own single-object encoding and `labels` the Avro
binary encoding of the Labels record: any Avro library decodes it once it is
decrypted. A sender seals many records under a handful of label sets, so the
labels' bytes are encoded once (by fastavro, as the tail of a SealedContent with
an empty payload: exactly the bytes fastavro writes there) and then concatenated;
a receiver splits at the length prefix and decodes a labels tail once. What the
fast path does not take (another writer version of SealedContent, a negative
length) goes to the schema store's full decode, which also decides how bytes
that are not a SealedContent fail. Where it answers, it answers as that decode.
"""

from __future__ import annotations

import io

import fastavro

from broker.avro_binary import decode_long, encode_long
from broker.envelope.labels import Labels
from broker.errors import ConfigError, MalformedRecord
from broker.schemas import SINGLE_OBJECT_MAGIC, SchemaStore

#: Labels tails longer than this are decoded each time instead of remembered (only
#: a sender's own odd output is that long: a cache of them would be its to fill).
_MAX_CACHED_TAIL = 1024
_LONGEST_LENGTH = 5  # varint bytes of a length below 2**34


def _length(data: bytes, pos: int) -> tuple[int, int] | None:
    """The Avro long at `pos` and where it ends, as fastavro reads it; None if it is
    negative (fastavro would read to the end) or longer than this parser takes."""
    try:
        n, end = decode_long(data, pos, max_bytes=_LONGEST_LENGTH)
    except ValueError:
        return None
    return None if n < 0 else (n, end)


class ContentCodec:
    """Encodes and decodes SealedContent for one schema store; caches label encodings.

    Caches are bounded and hold only immutable values. Not thread-safe (like the
    sealer and the opener that own one).
    """

    def __init__(self, store: SchemaStore, cache_size: int = 256) -> None:
        self._store = store
        self._head = SINGLE_OBJECT_MAGIC + store.fingerprint("SealedContent")
        labels_type = next(
            f["type"] for f in store.schema("SealedContent")["fields"] if f["name"] == "labels"
        )
        self._labels_schema = fastavro.parse_schema(labels_type)
        self._size = cache_size
        self._encoded: dict[Labels, bytes] = {}
        self._decoded: dict[bytes, Labels] = {}

    def wrap(self, labels: Labels, payload: bytes) -> bytes:
        """The single-object encoding of SealedContent(payload, labels)."""
        tail = self._encoded.get(labels)
        if tail is None:
            tail = self._encode_labels(labels)
        return b"".join((self._head, encode_long(len(payload)), payload, tail))

    def _encode_labels(self, labels: Labels) -> bytes:
        empty = self._store.encode("SealedContent", {"payload": b"", "labels": labels.to_avro()})
        if not empty.startswith(self._head + b"\x00"):
            raise AssertionError("SealedContent does not start with its payload")
        tail = empty[len(self._head) + 1 :]
        if len(self._encoded) >= self._size:
            self._encoded.clear()
        self._encoded[labels] = tail
        return tail

    def unwrap(self, plaintext: bytes) -> tuple[Labels, bytes]:
        """(labels, payload) of a decrypted SealedContent.

        MalformedRecord or UnknownSchema if the bytes are not one, or the labels
        are not valid labels.
        """
        if plaintext.startswith(self._head):
            found = _length(plaintext, len(self._head))
            if found is not None:
                size, at = found
                # Past the end, the tail is empty and decodes to no labels.
                labels = self._labels(plaintext[at + size :])
                if labels is not None:
                    return labels, plaintext[at : at + size]
        _, rec = self._store.decode(plaintext, expected="SealedContent")
        return _checked(rec["labels"]), bytes(rec["payload"])

    def _labels(self, tail: bytes) -> Labels | None:
        """The labels `tail` encodes in full, or None (then the full decode decides)."""
        labels = self._decoded.get(tail)
        if labels is not None:
            return labels
        buf = io.BytesIO(tail)
        try:
            rec = fastavro.schemaless_reader(buf, self._labels_schema, self._labels_schema)
        except Exception:  # fastavro raises many types on corrupt input
            return None
        if not isinstance(rec, dict) or buf.tell() != len(tail):
            return None
        labels = _checked(rec)
        if len(tail) <= _MAX_CACHED_TAIL:
            if len(self._decoded) >= self._size:
                self._decoded.clear()
            self._decoded[tail] = labels
        return labels


def _checked(rec: dict[str, object]) -> Labels:
    try:
        return Labels.from_avro(rec)
    except ConfigError as exc:
        raise MalformedRecord(f"sealed labels: {exc}") from None
