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
STATUSES: tuple[str, ...] = ("active", "suspended", "revoked")
KEMS: tuple[str, ...] = ("x25519", "mlkem768x25519")

Role = Literal["operational", "supporting", "member"]
Status = Literal["active", "suspended", "revoked"]
Kem = Literal["x25519", "mlkem768x25519"]
