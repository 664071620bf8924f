"""The words every part of the broker shares: communities, streams, categories, roles.

Defined once here so the registry, the envelope labels, the topic names and the
policy cannot drift apart. Pure data: importing it loads nothing else.
"""

from __future__ import annotations

from typing import Literal

COMMUNITIES: tuple[str, ...] = ("civilian", "law_enforcement", "diplomatic", "defence")
STREAMS: tuple[str, ...] = ("indicators", "incidents", "reports", "assistance", "receipts")
#: ENISA Reference Security Incident Taxonomy top-level classes (as IntelMQ's
#: classification.taxonomy), plus attribution and capability.
CATEGORIES: tuple[str, ...] = (
    "abusive-content",
    "malicious-code",
    "information-gathering",
    "intrusion-attempts",
    "intrusions",
    "availability",
    "information-content-security",
    "fraud",
    "vulnerable",
    "other",
    "test",
    "attribution",
    "capability",
)
ROLES: tuple[str, ...] = ("operational", "supporting", "member")
#: The 27 EU Member States, ISO 3166-1 alpha-2 (Greece is GR here, EL in EU usage).
EU_MEMBER_STATES: tuple[str, ...] = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip
#: The payload types of the mutual-assistance workflow: the request, then its steps.
ASSISTANCE_REQUEST = "AssistanceRequest"
ASSISTANCE_STEPS: tuple[str, ...] = (
    "AssistanceOffer",
    "AssistanceAcceptance",
    "AssistanceStatus",
    "AssistanceClosure",
)
#: The payload type of the capability inventory (jcu.capabilities).
CAPABILITY_ENTRY = "CapabilityEntry"
STATUSES: tuple[str, ...] = ("active", "suspended", "revoked")
KEMS: tuple[str, ...] = ("x25519", "mlkem768x25519")

Role = Literal["operational", "supporting", "member"]
Status = Literal["active", "suspended", "revoked"]
Kem = Literal["x25519", "mlkem768x25519"]
