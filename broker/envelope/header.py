"""The visible part of an envelope, and reading it without opening the envelope.

Anyone who can read the topic can read the header: sender, communities, topic,
payload type, TLP and whether it is exercise traffic, recipients' ids and key
ids, times. Routing and verification need those; the other handling labels
travel encrypted (format version 2). Envelopes of format version 1 still carry
all labels in the clear; their header keeps them (`labels`). docs/envelope.md
has the field-by-field table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from broker.envelope import _wire
from broker.envelope.labels import Labels, tlp_from_avro
from broker.errors import ConfigError, MalformedRecord
from broker.schemas import SchemaStore


@dataclass(frozen=True, slots=True)
class RecipientEntry:
    participant: str
    key_id: str
    kem: str


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """The clear header of an envelope, UNVERIFIED until the envelope is opened."""

    version: int
    message_id: str
    sender: str
    sender_key_id: str
    created: datetime
    expires: datetime
    origin_community: str
    target_community: str
    topic: str
    payload_type: str
    payload_fingerprint: bytes
    #: TLP level of the labels ("AMBER+STRICT", not the Avro symbol).
    tlp: str
    #: Whether this is exercise traffic (the exercise id itself is inside).
    exercise: bool
    recipients: tuple[RecipientEntry, ...]
    content_key_id: bytes
    #: Format version 1 only: all labels, in the clear; None in version 2, whose labels
    #: only the opened message has (`OpenedMessage.labels`).
    labels: Labels | None = None

    @property
    def recipient_ids(self) -> tuple[str, ...]:
        return tuple(r.participant for r in self.recipients)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "message_id": self.message_id,
            "sender": self.sender,
            "sender_key_id": self.sender_key_id,
            "created": self.created.isoformat(),
            "expires": self.expires.isoformat(),
            "origin_community": self.origin_community,
            "target_community": self.target_community,
            "topic": self.topic,
            "payload_type": self.payload_type,
            "payload_fingerprint": self.payload_fingerprint.hex(),
            "tlp": self.tlp,
            "exercise": self.exercise,
            "recipients": [
                {"participant": r.participant, "key_id": r.key_id, "kem": r.kem}
                for r in self.recipients
            ],
            **({"labels": self.labels.to_json()} if self.labels is not None else {}),
        }


def header_from_record(rec: Mapping[str, Any]) -> EnvelopeHeader:
    """The header of a decoded Envelope record of either format.

    The layout (which schema the bytes were written with: version 1 has `labels`,
    version 2 `tlp` and `exercise`) decides how it is read; MalformedRecord if
    the record claims the other known version, or its clear labels are invalid.
    Versions not known here are read by their layout (the opener refuses them).
    """
    labels: Labels | None = None
    if "labels" in rec:
        if rec["version"] == _wire.ENVELOPE_VERSION:
            raise MalformedRecord("a version 2 envelope written with the version 1 schema")
        try:
            labels = Labels.from_avro(rec["labels"])
        except ConfigError as exc:
            raise MalformedRecord(f"envelope labels: {exc}") from None
        tlp, exercise = labels.tlp, labels.exercise is not None
    else:
        if rec["version"] == _wire.LEGACY_VERSION:
            raise MalformedRecord("a version 1 envelope written with the version 2 schema")
        tlp, exercise = tlp_from_avro(rec["tlp"]), rec["exercise"]
    return EnvelopeHeader(
        version=rec["version"],
        message_id=str(rec["message_id"]),
        sender=rec["sender"],
        sender_key_id=rec["sender_key_id"],
        created=rec["created"],
        expires=rec["expires"],
        origin_community=rec["origin_community"],
        target_community=rec["target_community"],
        topic=rec["topic"],
        payload_type=rec["payload_type"],
        payload_fingerprint=bytes(rec["payload_fingerprint"]),
        tlp=tlp,
        exercise=exercise,
        recipients=tuple(
            RecipientEntry(r["participant"], r["key_id"], r["kem"]) for r in rec["recipients"]
        ),
        content_key_id=bytes(rec["content_key_id"]),
        labels=labels,
    )


def read_header(store: SchemaStore, data: bytes) -> EnvelopeHeader:
    """The header of envelope bytes, UNVERIFIED: for routing and pre-checks only."""
    _, rec = store.decode(data, expected="Envelope")
    return header_from_record(rec)


class DecodedEnvelope(NamedTuple):
    """Envelope bytes decoded once: the bytes, their Avro record and their UNVERIFIED header."""

    data: bytes
    record: dict[str, Any]
    header: EnvelopeHeader


def decode_envelope(store: SchemaStore, data: bytes) -> DecodedEnvelope:
    """Decode envelope bytes once for routing and for opening.

    A receiver reads the header to route (is it for us, have we had it) and then
    opens the same bytes; `Opener.open(data, topic=..., decoded=...)` takes this
    result instead of decoding a second time. The header is UNVERIFIED until then.
    """
    _, rec = store.decode(data, expected="Envelope")
    return DecodedEnvelope(data, rec, header_from_record(rec))
