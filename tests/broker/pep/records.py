"""Small valid payload records for pipeline tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any


def indicator(value: str = "198.51.100.7") -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "observable_type": "ipv4-addr",
        "value": value,
        "pattern": f"[ipv4-addr:value = '{value}']",
        "pattern_type": "stix",
        "valid_from": datetime.now(UTC),
        "confidence": 80,
        "labels": ["c2"],
        "source_object_id": f"indicator--{uuid.uuid4()}",
    }


def incident_report(with_persons: bool = True) -> dict[str, Any]:
    persons = [{"name": "Jane Analyst", "email": "jane@example.org"}] if with_persons else []
    return {
        "id": str(uuid.uuid4()),
        "title": "Ransomware at a hospital",
        "description": "Encryption of the patient records system.",
        "reported": datetime.now(UTC),
        "severity": "HIGH",
        "category": "malicious-code",
        "member_states": ["FR", "DE"],
        "reporter": {"name": "John Reporter", "email": "john@example.org"}
        if with_persons
        else None,
        "affected_persons": persons,
    }


def situation_report() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()),
        "title": "Weekly picture",
        "issued": now,
        "period_start": now,
        "period_end": now,
        "author": "enisa",
        "threat_level": "ELEVATED",
        "summary": "Ransomware campaigns against health care continue.",
    }
