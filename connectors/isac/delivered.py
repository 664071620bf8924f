"""A record as the subscriber hands it to an ISAC sink: payload plus delivery facts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Delivered:
    """One received, decrypted, policy-checked record."""

    payload_type: str  # "Indicator", "IncidentReport", ... (short Avro name)
    record: Mapping[str, Any]  # as decoded by broker.schemas (datetimes, uuid str or UUID)
    tlp: str  # TLP 2.0 level, "AMBER+STRICT" or "AMBER_STRICT" both accepted
    message_id: str
    sender: str  # participant id
    received: datetime  # aware
    retracted: bool = False  # the sender withdrew it: STIX revoked, MISP to_ids false
    redacted: bool = False  # personal data or parts were removed by policy before delivery
    categories: frozenset[str] = field(default=frozenset())
    #: What the policy removed from this copy (personal-data fields, parts marked stricter,
    #: references to what the recipient does not get).
    redacted_fields: tuple[str, ...] = ()
