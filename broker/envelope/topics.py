"""Topic names for sealed records: `jcu.<community>.<stream>`, exercises apart.

The envelope binds the topic it was sealed for; these are the names both the
offline `jcu seal` / `jcu open` and the Kafka transport use by default.
"""

from __future__ import annotations

from broker.errors import ConfigError
from broker.vocabulary import COMMUNITIES

#: The stream (topic suffix) each payload type travels on.
PAYLOAD_STREAMS: dict[str, str] = {
    "Indicator": "indicators",
    # Threat intelligence as its source wrote it: a graph travels on one stream, so a
    # recipient (and its TAXII collection) holds an object and what it refers to together.
    "StixObject": "indicators",
    "MispEvent": "indicators",
    "IncidentReport": "incidents",
    "SituationReport": "reports",
    "AssistanceRequest": "assistance",
    "AssistanceOffer": "assistance",
    "AssistanceAcceptance": "assistance",
    "AssistanceStatus": "assistance",
    "AssistanceClosure": "assistance",
    "CaseMessage": "assistance",  # SIENA-style case exchange between agencies: assistance
    "Receipt": "receipts",
}


def stream_of(payload_type: str) -> str:
    short = payload_type.rpartition(".")[2]
    try:
        return PAYLOAD_STREAMS[short]
    except KeyError:
        raise ConfigError(
            f"{short} is not a payload type; one of {', '.join(PAYLOAD_STREAMS)}"
        ) from None


def default_topic(community: str, payload_type: str, *, exercise: bool = False) -> str:
    """`jcu.<community>.<stream>`, or `jcu.exercise.<community>.<stream>` for exercise traffic."""
    if community not in COMMUNITIES:
        raise ConfigError(f"unknown community {community!r}; one of {', '.join(COMMUNITIES)}")
    prefix = "jcu.exercise" if exercise else "jcu"
    return f"{prefix}.{community}.{stream_of(payload_type)}"
