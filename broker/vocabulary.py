"""The words every part of the broker shares: TLP, handling codes, categories, Member
States, communities, streams, roles.

Defined once here so the registry, the envelope labels, the topic names, the policy,
the audit log, the connectors and the CLI cannot drift apart. Where an Avro schema
defines a word list (Labels.avsc: the TLP and handling-code enums), the tuple here is
its symbols, checked by tests/broker/test_vocabulary.py. Pure data and lookups:
importing it loads nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

#: TLP 2.0, least to most restrictive (Labels.avsc's Tlp enum, AMBER_STRICT there).
TLP_LEVELS: tuple[str, ...] = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
#: Other spellings people and formats use: TLP 1.0 WHITE is CLEAR; Avro cannot hold '+'.
TLP_ALIASES: Mapping[str, str] = {"WHITE": "CLEAR", "AMBER_STRICT": "AMBER+STRICT"}
#: SIENA handling codes (Labels.avsc's HandlingCode enum).
HANDLING_CODES: tuple[str, ...] = ("H0", "H1", "H2", "H3")
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
#: Who may declare a crisis (rule 10): the EU-CyCLONe network and the CSIRTs network. The
#: crisis board checks declarations against it; the Kafka ACLs let only them write jcu.control.
CRISIS_AUTHORITIES: frozenset[str] = frozenset({"eu-cyclone", "csirts-network"})


def tlp_level(value: str) -> str | None:
    """'amber+strict', 'TLP:WHITE', 'amber_strict' -> the TLP 2.0 level; None if none."""
    text = value.strip().upper()
    text = text.removeprefix("TLP:")
    text = TLP_ALIASES.get(text, text)
    return text if text in TLP_LEVELS else None


def tlp_avro_symbol(level: str) -> str:
    """The Labels.tlp enum symbol of a TLP level (AMBER+STRICT is AMBER_STRICT in Avro)."""
    return level.replace("+", "_")


def handling_code(value: str) -> str | None:
    """'h1', ' H1 ' -> 'H1'; None if not a handling code."""
    text = value.strip().upper()
    return text if text in HANDLING_CODES else None


def category(value: str) -> str | None:
    """'Malicious-Code', 'malicious_code' -> 'malicious-code'; None if not a category."""
    text = value.strip().lower().replace("_", "-")
    return text if text in CATEGORIES else None


def member_state(value: str) -> str | None:
    """'fr' -> 'FR'; None if not an EU Member State (Greece is GR, not EL)."""
    text = value.strip().upper()
    return text if text in EU_MEMBER_STATES else None


def not_member_states(codes: Iterable[str]) -> str | None:
    """What is wrong with `codes` as EU Member States, in words; None if nothing."""
    bad = sorted({c for c in codes if member_state(c) is None})
    if not bad:
        return None
    hint = " (Greece is GR in ISO 3166-1)" if "EL" in bad else ""
    verb = "is not an EU Member State" if len(bad) == 1 else "are not EU Member States"
    return f"{', '.join(bad)} {verb}: name them by their ISO 3166-1 codes (FR, DE, ...){hint}"


Role = Literal["operational", "supporting", "member"]
Status = Literal["active", "suspended", "revoked"]
Kem = Literal["x25519", "mlkem768x25519"]
