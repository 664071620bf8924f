"""The visible part of an envelope, and reading it without opening the envelope.

Anyone who can read the topic can read the header: sender, communities, topic,
payload type, labels, recipients' ids and key ids, times. That is by design
(policy re-checks and routing need it) and stated in docs/envelope.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from broker.envelope.labels import Labels
from broker.errors import ConfigError, MalformedRecord
from broker.schemas import SchemaStore


@dataclass(frozen=True, slots=True)
class RecipientEntry:
    participant: str
    key_id: str
    kem: str


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
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
    labels: Labels
    recipients: tuple[RecipientEntry, ...]
    content_key_id: bytes

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
            "labels": self.labels.to_json(),
            "recipients": [
                {"participant": r.participant, "key_id": r.key_id, "kem": r.kem}
                for r in self.recipients
            ],
        }


def header_from_record(rec: Mapping[str, Any]) -> EnvelopeHeader:
    """The header of a decoded Envelope record; MalformedRecord if labels are invalid."""
    try:
        labels = Labels.from_avro(rec["labels"])
    except ConfigError as exc:
        raise MalformedRecord(f"envelope labels: {exc}") from None
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
        labels=labels,
        recipients=tuple(
            RecipientEntry(r["participant"], r["key_id"], r["kem"]) for r in rec["recipients"]
        ),
        content_key_id=bytes(rec["content_key_id"]),
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
