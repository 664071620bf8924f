"""The secure envelope: Avro payload, AES-256-GCM, HPKE-wrapped keys, Ed25519 signature.

Public API:
    Sealer(sender, keystore=, keyring=, store=).seal(type, record, recipients=, topic=, labels=)
        .seal_many([SealRequest(...), ...]): one signature over a batch, each verifiable alone
    Opener(participant, keystore=, keyring=, store=, replay_guard=).open(data, topic=)
    EnvelopeReader(store).decode(data): a receiver's decode_envelope, fast within a sender batch
    Labels, SealedMessage, OpenedMessage (.labels: decrypted), EnvelopeHeader (clear: .tlp,
        .exercise; .labels only for format 1), read_header
    MemoryReplayGuard, SqliteReplayGuard, default_topic
Construction and guarantees: docs/envelope.md.
"""

from typing import TYPE_CHECKING

from broker.exports import lazy_exports

if TYPE_CHECKING:
    from broker.envelope._reader import EnvelopeReader
    from broker.envelope.content_keys import (
        MAX_KEY_AGE,
        MAX_MESSAGES_PER_KEY,
        ContentKeyCache,
    )
    from broker.envelope.header import EnvelopeHeader, RecipientEntry, read_header
    from broker.envelope.labels import HANDLING_CODES, TLP_LEVELS, Labels
    from broker.envelope.opener import OpenedMessage, Opener
    from broker.envelope.replay import MemoryReplayGuard, ReplayGuard, SqliteReplayGuard
    from broker.envelope.sealer import (
        DEFAULT_VALIDITY,
        MAX_VALIDITY,
        SealedMessage,
        Sealer,
        SealRequest,
    )
    from broker.envelope.topics import PAYLOAD_STREAMS, default_topic, stream_of

# Each name is imported when first used: labels do not load the opener, nor a sealer it.
__getattr__ = lazy_exports(
    __name__,
    {
        "EnvelopeReader": "broker.envelope._reader",
        **dict.fromkeys(
            ("MAX_KEY_AGE", "MAX_MESSAGES_PER_KEY", "ContentKeyCache"),
            "broker.envelope.content_keys",
        ),
        **dict.fromkeys(
            ("EnvelopeHeader", "RecipientEntry", "read_header"), "broker.envelope.header"
        ),
        **dict.fromkeys(("HANDLING_CODES", "TLP_LEVELS", "Labels"), "broker.envelope.labels"),
        **dict.fromkeys(("OpenedMessage", "Opener"), "broker.envelope.opener"),
        **dict.fromkeys(
            ("MemoryReplayGuard", "ReplayGuard", "SqliteReplayGuard"), "broker.envelope.replay"
        ),
        **dict.fromkeys(
            ("DEFAULT_VALIDITY", "MAX_VALIDITY", "SealedMessage", "Sealer", "SealRequest"),
            "broker.envelope.sealer",
        ),
        **dict.fromkeys(
            ("PAYLOAD_STREAMS", "default_topic", "stream_of"), "broker.envelope.topics"
        ),
    },
    globals(),
)

__all__ = [
    "DEFAULT_VALIDITY",
    "HANDLING_CODES",
    "MAX_KEY_AGE",
    "MAX_MESSAGES_PER_KEY",
    "MAX_VALIDITY",
    "PAYLOAD_STREAMS",
    "TLP_LEVELS",
    "ContentKeyCache",
    "EnvelopeHeader",
    "EnvelopeReader",
    "Labels",
    "MemoryReplayGuard",
    "OpenedMessage",
    "Opener",
    "RecipientEntry",
    "ReplayGuard",
    "SealRequest",
    "SealedMessage",
    "Sealer",
    "SqliteReplayGuard",
    "default_topic",
    "read_header",
    "stream_of",
]
