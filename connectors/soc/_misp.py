"""MISP event JSON -> one MispEvent record per event, whole.

An event travels with its attributes, objects and their references, tags,
galaxies and clusters, sightings and event reports, as MISP exported it
(composite values such as `ip-dst|port` stay whole, comments as written).
Each attribute is checked with PyMISP on its own: a bad one is taken out of
the event and skipped with PyMISP's reason, the rest goes. What MISP itself
says about sharing is honoured per attribute and object:

- a `tlp:` tag stricter than the event's makes the attribute a part that only
  organisations cleared for that TLP get (the policy decides);
- a distribution narrower than the event's: "your organisation only" (0) and
  a sharing group of its own (4) never leave the sender (skipped, said why);
  "this community only" (1) goes only to the sender's own community.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterator
from typing import Any

from pymisp import MISPAttribute, MISPEvent

from broker.errors import InputFormatError
from broker.pep import Part
from broker.vocabulary import CATEGORIES
from connectors import tlp as tlp_levels
from connectors._input import as_text, load_json
from connectors._misp_event import (
    all_attributes,
    attribute_part,
    event_time,
    object_part,
    record_of,
    redact_record,
    remove_parts,
    tag_names,
)
from connectors._observables import HASH_NAMES, Observable, check_value
from connectors.soc.result import NO_TLP, Item, ParseResult, Skipped, category_set

#: MISP taxonomies whose predicates are ENISA reference taxonomy classes.
ENISA_TAXONOMIES = ("ecsirt", "rsit")
_DOMAIN_TYPES = {"domain", "hostname", "domain|ip", "hostname|port"}
_IP_TYPES = {"ip-src", "ip-dst", "ip-src|port", "ip-dst|port"}
_EMAIL_TYPES = {"email", "email-src", "email-dst", "email-reply-to"}
#: MISP distribution levels.
YOUR_ORGANISATION, THIS_COMMUNITY, CONNECTED, ALL, SHARING_GROUP, INHERIT = range(6)


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


def _distribution(holder: dict[str, Any], inherited: int) -> int:
    raw = holder.get("distribution")
    try:
        level = int(str(raw))
    except (TypeError, ValueError):
        return inherited
    return inherited if level == INHERIT else level


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _event(
    event: dict[str, Any],
    index: int,
    default: str | None,
    items: list[Item],
    skipped: list[Skipped],
) -> None:
    event_id = str(event.get("uuid") or f"events[{index}]")
    try:
        event_uuid = str(uuid.UUID(str(event.get("uuid"))))
    except ValueError:
        skipped.append(Skipped(event_id, "misp-event", f"not a uuid: {event.get('uuid')!r}"))
        return
    info = event.get("info")
    if not isinstance(info, str) or not info.strip():
        skipped.append(Skipped(event_id, "misp-event", "invalid MISP event: no 'info' (title)"))
        return
    event_tags = tag_names(event)
    level = tlp_levels.strictest([*_tlps(event_tags), default])
    if level is None:
        skipped.append(Skipped(event_id, "misp-event", NO_TLP))
        return
    event = _clean(event, event_id, skipped)
    event_distribution = _distribution(event, ALL)
    sharing_group = str(event.get("sharing_group_id") or "0")

    gone: list[str] = []
    parts: list[Part] = []
    community: list[str] = []
    categories = set(enisa_categories(event_tags))
    for obj in _list(event.get("Object")):
        name = object_part(str(obj.get("uuid")))
        why = _not_shared(obj, event_distribution, sharing_group)
        if why:
            gone.append(name)
            skipped.append(Skipped(str(obj.get("uuid")), "misp-object", why))
        elif _distribution(obj, event_distribution) == THIS_COMMUNITY < event_distribution:
            community.append(name)
    where = {id(a): f"{event_id}/Attribute" for a in _list(event.get("Attribute"))}
    for attribute in all_attributes(event):
        source_id = str(attribute.get("uuid") or where.get(id(attribute), event_id))
        name = attribute_part(str(attribute.get("uuid")))
        problem = _attribute_problem(attribute)
        if problem is None:
            problem = _not_shared(attribute, event_distribution, sharing_group)
        if problem is not None:
            gone.append(name)
            skipped.append(Skipped(source_id, "misp-attribute", problem))
            continue
        tags = tag_names(attribute)
        categories |= enisa_categories(tags)
        own = tlp_levels.strictest(_tlps(tags))
        if own is not None and tlp_levels.rank(own) > tlp_levels.rank(level):
            parts.append(Part(name, own))
        if _distribution(attribute, event_distribution) == THIS_COMMUNITY < event_distribution:
            community.append(name)

    whole = remove_parts(event, gone) if gone else event
    try:
        MISPEvent().from_dict(**json.loads(json.dumps(whole)))
        record = record_of(whole)
        version = str(int(event_time(whole).timestamp()))
    except Exception as exc:
        # PyMISP reports malformed members with whatever built-in error its code hits;
        # one bad event must only skip that event.
        skipped.append(Skipped(event_id, "misp-event", f"invalid MISP event: {_one_line(exc)}"))
        return
    items.append(
        Item(
            "MispEvent",
            record,
            level,
            category_set(categories),
            event_uuid,
            source_type="misp-event",
            parts=tuple(parts),
            version=version,
            container=event_uuid,
            redactor=redact_record,
            community_parts=tuple(community),
        )
    )


def _clean(event: dict[str, Any], event_id: str, skipped: list[Skipped]) -> dict[str, Any]:
    """The event without members that are not MISP attributes or objects (each skipped)."""
    out = dict(event)
    if "Attribute" in out:
        out["Attribute"] = _dicts(out["Attribute"], f"{event_id}/Attribute", skipped)
    if "Object" in out:
        objects = []
        for o_index, obj in enumerate(_list(out["Object"])):
            if not isinstance(obj, dict):
                where = f"{event_id}/Object[{o_index}]"
                skipped.append(Skipped(where, "misp-object", "not an object"))
                continue
            obj = dict(obj)
            if "Attribute" in obj:
                where = f"{event_id}/Object[{o_index}]/Attribute"
                obj["Attribute"] = _dicts(obj["Attribute"], where, skipped)
            objects.append(obj)
        out["Object"] = objects
    return out


def _dicts(members: Any, where: str, skipped: list[Skipped]) -> list[dict[str, Any]]:
    kept = []
    for index, member in enumerate(_list(members)):
        if isinstance(member, dict):
            kept.append(member)
        else:
            skipped.append(
                Skipped(f"{where}[{index}]", "misp-attribute", "not an attribute object")
            )
    return kept


def _attribute_problem(raw: dict[str, Any]) -> str | None:
    if raw.get("deleted") in (True, "1", 1):
        return "deleted in MISP"
    try:
        uuid.UUID(str(raw.get("uuid")))
    except ValueError:
        return f"not a uuid: {raw.get('uuid')!r}"
    try:
        attr = MISPAttribute()
        attr.from_dict(**json.loads(json.dumps(raw)))
    except Exception as exc:
        # PyMISP reports malformed members with whatever built-in error its code hits
        # (IndexError, AttributeError, ...): only this attribute is left out.
        return f"invalid MISP attribute: {_one_line(exc)}"
    obs = observable_of(str(attr.type), str(attr.value))
    problem = check_value(obs) if obs is not None else None
    if problem:
        return f"bad {attr.type} value: {problem}"
    return None


def _not_shared(holder: dict[str, Any], event_distribution: int, sharing_group: str) -> str | None:
    """Why MISP's own distribution keeps an attribute or object from leaving, if it does."""
    level = _distribution(holder, event_distribution)
    if level == YOUR_ORGANISATION and event_distribution != YOUR_ORGANISATION:
        return "MISP distribution 'your organisation only': not shared"
    if level == SHARING_GROUP and (
        event_distribution != SHARING_GROUP
        or str(holder.get("sharing_group_id") or sharing_group) != sharing_group
    ):
        return "MISP distribution to a sharing group of its own: not shared (no mapping)"
    return None


def observable_of(misp_type: str, value: str) -> Observable | None:
    """The STIX observable a MISP attribute stands for (to check its value as MISP would
    on import), or None when there is no mapping."""
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
