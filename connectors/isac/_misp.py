"""Delivered records -> one MISP event (JSON as MISP exports it), built with PyMISP.

Indicators become attributes (uuid = record id, to_ids true unless retracted),
IncidentReports become event reports. TLP goes out as `tlp:` tags on each
attribute and, strictest of all, on the event. Personal data fields of
IncidentReports (reporter, affected persons) are not written to MISP.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from pymisp import MISPEvent
from pymisp.exceptions import PyMISPError

from broker.errors import ConfigError
from connectors import tlp as tlp_levels
from connectors._observables import summarise
from connectors._values import as_time, as_uuid
from connectors.isac.delivered import Delivered

MISP_PAYLOADS = ("Indicator", "IncidentReport", "MispEvent", "StixObject")
RETRACTED_TAG = "jcu:retracted"
REDACTED_TAG = "jcu:redacted"
#: Mandate categories that are not ENISA (ecsirt) classes.
JCU_ONLY_CATEGORIES = frozenset({"attribution", "capability"})

_SIMPLE_TYPES = {
    "ipv4-addr": "ip-dst",
    "ipv6-addr": "ip-dst",
    "domain-name": "domain",
    "url": "url",
    "email-addr": "email-src",
    "mac-addr": "mac-address",
    "mutex": "mutex",
    "windows-registry-key": "regkey",
    "autonomous-system": "AS",
}
_THREAT_LEVEL = {"CRITICAL": 1, "HIGH": 1, "MEDIUM": 2, "LOW": 3}


def misp_attribute_of(record: Any) -> tuple[str, str]:
    """(MISP attribute type, value) for an Indicator record; stix2-pattern when no single value."""
    otype, value = record.get("observable_type"), record.get("value")
    pattern = record.get("pattern")
    if value and otype in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[otype], str(value)
    if value and otype == "file":
        single = (
            summarise(pattern).single if pattern and record.get("pattern_type") == "stix" else None
        )
        if single is not None and single.hash_name:
            return single.hash_name, str(value)
        return "filename", str(value)
    if pattern and (record.get("pattern_type") or "stix") == "stix":
        return "stix2-pattern", str(pattern)
    if pattern and record.get("pattern_type") in ("snort", "yara", "sigma", "suricata"):
        return str(record["pattern_type"]), str(pattern)
    raise ConfigError(f"indicator {record.get('id')} has no value or pattern MISP can carry")


def _tags(item: Delivered) -> list[str]:
    tags = [tlp_levels.misp_tag(item.tlp)]
    tags += [
        f"ecsirt:{c}" if c not in JCU_ONLY_CATEGORIES else f'jcu:category="{c}"'
        for c in sorted(item.categories)
    ]
    if item.retracted:
        tags.append(RETRACTED_TAG)
    if item.redacted:
        tags.append(REDACTED_TAG)
    return tags


def _report_content(item: Delivered) -> str:
    rec = item.record
    lines = [
        str(rec.get("description") or ""),
        "",
        f"- severity: {rec['severity']}",
        f"- category: {rec['category']}",
        f"- status: {rec.get('status', 'OPEN')}",
        f"- TLP: {tlp_levels.normalise(item.tlp)}",
        f"- message: {item.message_id} from {item.sender}",
    ]
    lines += [f"- indicator: {as_uuid(i)}" for i in rec.get("indicator_ids", ())]
    lines += [
        f"- reference: {r.get('url') or r.get('external_id') or r['source_name']}"
        for r in rec.get("external_references", ())
    ]
    if item.retracted:
        lines.append("- RETRACTED by the sender")
    return "\n".join(lines).strip()


def misp_event_of(item: Delivered) -> dict[str, Any]:
    """A delivered MispEvent as MISP exports it, `{"Event": ...}`: whole, with the sender as
    Orgc, and tagged `jcu:redacted` (`jcu:retracted`) when parts were withheld (withdrawn)."""
    from connectors._misp_event import event_of
    from connectors.isac._stix import sender_orgc

    event = event_of(item.record)
    event["Orgc"] = sender_orgc(item.sender)
    event.pop("Org", None)  # the local owner is the receiving instance
    event.pop("orgc_id", None)
    event.pop("org_id", None)
    extra = [REDACTED_TAG] if item.redacted else []
    if item.retracted:
        extra.append(RETRACTED_TAG)
    if extra:
        tags = [t for t in event.get("Tag") or [] if isinstance(t, dict)]
        names = {t.get("name") for t in tags}
        event["Tag"] = tags + [{"name": t} for t in extra if t not in names]
    return {"Event": event}


def to_misp_event(
    items: Iterable[Delivered], info: str, *, event_uuid: str | None = None
) -> dict[str, Any]:
    """A MISP event `{"Event": {...}}` of the Indicators and IncidentReports in `items`.

    The event uuid is derived from the message ids unless given (re-delivery
    writes the same event). Other payload types raise ConfigError.
    """
    items = list(items)
    if not items:
        raise ConfigError("a MISP event needs at least one record")
    event = MISPEvent()
    event.info = info
    seed = "\n".join(sorted(i.message_id for i in items))
    event.uuid = event_uuid or str(uuid.uuid5(uuid.NAMESPACE_URL, "jcu-misp:" + seed))
    event.distribution = 0  # this organisation only: onward sharing is the broker's job
    event.analysis = 2
    event.published = False
    event.date = min(as_time(i.received) for i in items).date()
    event.add_tag(tlp_levels.misp_tag(tlp_levels.strictest(i.tlp for i in items) or "RED"))
    severities = [
        _THREAT_LEVEL.get(str(i.record.get("severity")), 4)
        for i in items
        if i.payload_type == "IncidentReport"
    ]
    event.threat_level_id = min(severities) if severities else 4
    for item in items:
        if item.payload_type not in ("Indicator", "IncidentReport"):
            raise ConfigError(
                f"no MISP mapping for {item.payload_type} (message {item.message_id}); "
                "deliver it as JSON lines"
            )
        try:
            _add(event, item)
        except PyMISPError as exc:
            raise ConfigError(
                f"message {item.message_id}: {item.payload_type} cannot be written as MISP: "
                + " ".join(str(exc).split())[:200]
            ) from None
    result: dict[str, Any] = {"Event": json.loads(event.to_json())}
    return result


def _add(event: MISPEvent, item: Delivered) -> None:
    rec = item.record
    if item.payload_type == "IncidentReport":
        event.add_event_report(
            str(rec["title"]), _report_content(item), uuid=as_uuid(rec["id"]), distribution=5
        )
        return
    attr_type, value = misp_attribute_of(rec)
    comment = " - ".join(str(x) for x in (rec.get("name"), rec.get("description")) if x)
    attribute = event.add_attribute(
        attr_type,
        value,
        uuid=as_uuid(rec["id"]),
        to_ids=not item.retracted,
        comment=comment,
        distribution=5,  # inherit the event's
        timestamp=as_time(item.received),
    )
    if isinstance(attribute, list):  # PyMISP splits some values; ours are single
        raise ConfigError(f"indicator {rec.get('id')}: MISP split the value")
    for tag in _tags(item):
        attribute.add_tag(tag)
