"""MISP event JSON -> Indicator records (attributes with to_ids) and one IncidentReport per event.

Attributes are loaded one by one with PyMISP, so a bad attribute is skipped
with PyMISP's reason while the rest of the event still publishes. Input
objects, for the "nothing dropped" accounting, are the events and every
attribute, top-level or inside a MISP object.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pymisp import MISPAttribute

from broker.errors import InputFormatError
from broker.vocabulary import CATEGORIES
from connectors import tlp as tlp_levels
from connectors._input import as_text, load_json
from connectors._observables import HASH_NAMES, Observable, check_value, to_pattern
from connectors._values import millis
from connectors.soc.result import NO_TLP, Item, ParseResult, Skipped

#: MISP threat_level_id -> IncidentReport severity (4, "undefined", maps to MEDIUM).
SEVERITY_OF_THREAT_LEVEL = {"1": "HIGH", "2": "MEDIUM", "3": "LOW", "4": "MEDIUM"}
#: MISP taxonomies whose predicates are ENISA reference taxonomy classes.
ENISA_TAXONOMIES = ("ecsirt", "rsit")

_DOMAIN_TYPES = {"domain", "hostname", "domain|ip", "hostname|port"}
_IP_TYPES = {"ip-src", "ip-dst", "ip-src|port", "ip-dst|port"}
_EMAIL_TYPES = {"email", "email-src", "email-dst", "email-reply-to"}


def parse_misp(
    data: bytes | str, *, default_tlp: str | None, what: str = "MISP input"
) -> ParseResult:
    """Map every MISP event in the input (one event, {"Event": ...}, or a list/response of them)."""
    default = tlp_levels.normalise(default_tlp) if default_tlp else None
    doc = load_json(as_text(data, what), what)
    events = list(_events(doc, what))
    if not events:
        raise InputFormatError(f"{what}: no MISP event found (expected {{'Event': {{...}}}})")
    items: list[Item] = []
    skipped: list[Skipped] = []
    for index, event in enumerate(events):
        _event(event, index, default, items, skipped)
    return ParseResult(tuple(items), tuple(skipped), "misp")


def _events(doc: Any, what: str) -> Iterator[dict[str, Any]]:
    if isinstance(doc, dict) and isinstance(doc.get("response"), list):
        doc = doc["response"]
    entries = doc if isinstance(doc, list) else [doc]
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("Event"), dict):
            yield entry["Event"]
        elif isinstance(entry, dict) and ("Attribute" in entry or "info" in entry):
            yield entry
        else:
            raise InputFormatError(f"{what}: not a MISP event (no 'Event', 'info' or 'Attribute')")


def _list(value: Any) -> list[Any]:
    """A member that should be a list, or [] when the input has something else there."""
    return value if isinstance(value, list) else []


def _tag_names(container: dict[str, Any]) -> list[str]:
    tags = _list(container.get("Tag"))
    return [t["name"] for t in tags if isinstance(t, dict) and isinstance(t.get("name"), str)]


def _tlps(tags: list[str]) -> list[str]:
    return [lvl for lvl in (tlp_levels.from_misp_tag(t) for t in tags) if lvl is not None]


def enisa_categories(tags: list[str]) -> frozenset[str]:
    """ENISA classes of ecsirt/rsit tags: 'ecsirt:malicious-code="ransomware"' -> malicious-code."""
    found = set()
    for tag in tags:
        namespace, _, rest = tag.partition(":")
        predicate = rest.partition("=")[0].strip().strip('"')
        if namespace.strip().lower() in ENISA_TAXONOMIES and predicate in CATEGORIES:
            found.add(predicate)
    return frozenset(found)


@dataclass
class _Context:
    event_tlps: list[str]
    default: str | None
    categories: frozenset[str]
    published_ids: list[str]
    links: list[dict[str, Any]]


def _event(
    event: dict[str, Any],
    index: int,
    default: str | None,
    items: list[Item],
    skipped: list[Skipped],
) -> None:
    event_tags = _tag_names(event)
    ctx = _Context(_tlps(event_tags), default, enisa_categories(event_tags), [], [])
    event_id = str(event.get("uuid") or f"events[{index}]")
    for a_index, attribute in enumerate(_list(event.get("Attribute"))):
        _attribute(attribute, f"{event_id}/Attribute[{a_index}]", None, ctx, items, skipped)
    for o_index, obj in enumerate(_list(event.get("Object"))):
        if not isinstance(obj, dict):
            skipped.append(Skipped(f"{event_id}/Object[{o_index}]", "misp-object", "not an object"))
            continue
        for a_index, attribute in enumerate(_list(obj.get("Attribute"))):
            where = f"{event_id}/Object[{o_index}]/Attribute[{a_index}]"
            _attribute(attribute, where, obj, ctx, items, skipped)

    level = tlp_levels.strictest([*ctx.event_tlps, default])
    if level is None:
        skipped.append(Skipped(event_id, "misp-event", NO_TLP))
        return
    try:
        record = _report_record(event, ctx)
    except (KeyError, ValueError, TypeError, OverflowError, OSError) as exc:
        skipped.append(Skipped(event_id, "misp-event", f"invalid MISP event: {exc}"))
        return
    items.append(Item("IncidentReport", record, level, ctx.categories, event_id))


def _report_record(event: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    info = event.get("info")
    if not isinstance(info, str) or not info.strip():
        raise ValueError("no 'info' (title)")
    return {
        "id": str(uuid.UUID(str(event["uuid"]))),
        "title": info,
        "description": "",
        "reported": _event_time(event),
        "detected": None,
        "status": "OPEN",
        "severity": SEVERITY_OF_THREAT_LEVEL.get(str(event.get("threat_level_id", "4")), "MEDIUM"),
        "category": sorted(ctx.categories)[0] if ctx.categories else "other",
        "indicator_ids": list(ctx.published_ids),
        "external_references": ctx.links,
    }


def _event_time(event: dict[str, Any]) -> datetime:
    for key in ("publish_timestamp", "timestamp"):
        raw = event.get(key)
        if raw not in (None, "", "0", 0):
            return millis(datetime.fromtimestamp(int(str(raw)), UTC))
    raw_date = event.get("date")
    if isinstance(raw_date, str):
        day = date.fromisoformat(raw_date)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    raise ValueError("no timestamp, publish_timestamp or date")


def _attribute(
    raw: Any,
    where: str,
    obj: dict[str, Any] | None,
    ctx: _Context,
    items: list[Item],
    skipped: list[Skipped],
) -> None:
    if not isinstance(raw, dict):
        skipped.append(Skipped(where, "misp-attribute", "not an attribute object"))
        return
    source_id = str(raw.get("uuid") or where)
    try:
        _map_attribute(raw, source_id, obj, ctx, items, skipped)
    except Exception as exc:
        # PyMISP reports malformed members with whatever built-in error its code hits
        # (IndexError, AttributeError, ...); each attribute stands alone, so any of
        # them only skips this one attribute.
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        skipped.append(Skipped(source_id, "misp-attribute", f"invalid MISP attribute: {reason}"))


def _map_attribute(
    raw: dict[str, Any],
    source_id: str,
    obj: dict[str, Any] | None,
    ctx: _Context,
    items: list[Item],
    skipped: list[Skipped],
) -> None:
    attr = MISPAttribute()
    attr.from_dict(**raw)
    if raw.get("deleted") in (True, "1", 1):
        skipped.append(Skipped(source_id, "misp-attribute", "deleted in MISP"))
        return
    if not attr.to_ids:
        if attr.type == "link":
            ctx.links.append(
                {
                    "source_name": "misp-link",
                    "url": str(attr.value),
                    "external_id": None,
                    "description": (str(raw.get("comment") or "") or None),
                }
            )
            reason = "to_ids is false: carried as an external reference of the event's report"
        else:
            reason = f"to_ids is false: not an indicator ({attr.type})"
        skipped.append(Skipped(source_id, "misp-attribute", reason))
        return
    obs = observable_of(str(attr.type), str(attr.value))
    if obs is None:
        reason = f"MISP attribute type {attr.type!r} has no STIX observable mapping"
        skipped.append(Skipped(source_id, "misp-attribute", reason))
        return
    problem = check_value(obs)
    if problem:
        skipped.append(Skipped(source_id, "misp-attribute", f"bad {attr.type} value: {problem}"))
        return
    tags = _tag_names(raw)
    level = tlp_levels.strictest(
        [*_tlps(tags), *(_tlps(_tag_names(obj)) if obj else ()), *ctx.event_tlps, ctx.default]
    )
    if level is None:
        skipped.append(Skipped(source_id, "misp-attribute", NO_TLP))
        return
    try:
        record_id = str(uuid.UUID(str(attr.uuid)))
    except ValueError:
        skipped.append(Skipped(source_id, "misp-attribute", f"not a uuid: {attr.uuid!r}"))
        return
    first_seen = getattr(attr, "first_seen", None) if "first_seen" in raw else None
    valid_from = (
        first_seen if isinstance(first_seen, datetime) else getattr(attr, "timestamp", None)
    )
    if not isinstance(valid_from, datetime):
        skipped.append(Skipped(source_id, "misp-attribute", "no timestamp or first_seen"))
        return
    name = f"{obj.get('name')}/{raw.get('object_relation')}" if obj else str(attr.type)
    record = {
        "id": record_id,
        "observable_type": obs.observable_type,
        "value": obs.value,
        "pattern": to_pattern(obs),
        "pattern_type": "stix",
        "name": name,
        "description": (str(raw.get("comment") or "") or None),
        "confidence": None,
        "valid_from": millis(valid_from),
        "valid_until": None,
        "kill_chain_phases": [],
        "labels": [t for t in tags if tlp_levels.from_misp_tag(t) is None],
        "external_references": [],
        "source_object_id": record_id,
    }
    ctx.published_ids.append(record_id)
    categories = ctx.categories | enisa_categories(tags)
    items.append(Item("Indicator", record, level, categories, source_id))


def observable_of(misp_type: str, value: str) -> Observable | None:
    """The STIX observable a MISP attribute stands for, or None when there is no mapping."""
    first, _, second = value.partition("|")
    if misp_type in _IP_TYPES:
        address = first if "|" in misp_type else value
        try:
            version = ipaddress.ip_network(address, strict=False).version
        except ValueError:
            return Observable("ipv4-addr", address)  # check_value then says why it is bad
        return Observable("ipv4-addr" if version == 4 else "ipv6-addr", address)
    if misp_type in _DOMAIN_TYPES:
        return Observable("domain-name", first if "|" in misp_type else value)
    if misp_type in ("url", "link"):
        return Observable("url", value)
    if misp_type in _EMAIL_TYPES:
        return Observable("email-addr", value)
    if misp_type in HASH_NAMES:
        return Observable("file", value, misp_type)
    if misp_type.startswith("filename|") and misp_type[9:] in HASH_NAMES:
        return Observable("file", second, misp_type[9:])
    if misp_type == "filename":
        return Observable("file", value)
    if misp_type == "mac-address":
        return Observable("mac-addr", value.lower().replace("-", ":"))
    if misp_type == "mutex":
        return Observable("mutex", value)
    if misp_type == "regkey":
        return Observable("windows-registry-key", value)
    if misp_type == "AS":
        return Observable("autonomous-system", value.upper().removeprefix("AS"))
    return None
