"""Delivered records -> a STIX 2.1 bundle that passes the OASIS validator.

A StixObject goes out as the object the source wrote (its own markings, its
`modified`), a MispEvent as the objects MISP's own converter makes of it
(connectors/_convert.py). Indicator and IncidentReport records are built with
the `stix2` library (so they are well-formed by construction); ids round-trip:
an indicator keeps the STIX id it came in with (`source_object_id`), otherwise
it gets `indicator--<record id>`. Their TLP goes out as the OASIS TLP 2.0
marking definitions, shipped inside the bundle.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import stix2
import stix2.exceptions

from broker.errors import ConfigError
from connectors import tlp as tlp_levels
from connectors._convert import misp_to_stix
from connectors._misp_event import event_of
from connectors._observables import Observable, to_pattern
from connectors._stix_object import object_of
from connectors._values import as_time, as_uuid
from connectors.isac.delivered import Delivered

#: Payload types this writer turns into STIX objects.
STIX_PAYLOADS = ("Indicator", "IncidentReport", "StixObject", "MispEvent")
#: Payload types that carry the source's own objects (and versions).
SOURCE_PAYLOADS = ("StixObject", "MispEvent")


def source_objects(item: Delivered) -> list[dict[str, Any]]:
    """The STIX objects of a StixObject (itself, whole) or a MispEvent (converted)."""
    if item.payload_type == "StixObject":
        return [object_of(item.record)]
    if item.payload_type == "MispEvent":
        event = event_of(item.record)
        event["Orgc"] = sender_orgc(item.sender)
        return misp_to_stix(event)
    raise ConfigError(f"{item.payload_type} carries no source objects")


def sender_orgc(sender: str) -> dict[str, str]:
    """The MISP organisation that stands for a sender: its participant id, a stable uuid."""
    return {"name": sender, "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:jcu:{sender}"))}


#: STIX 2.1 indicator-type-ov: these record labels go out as indicator_types, others as labels.
INDICATOR_TYPES = frozenset(
    {
        "anomalous-activity",
        "anonymization",
        "benign",
        "compromised",
        "malicious-activity",
        "attribution",
        "unknown",
    }
)


def indicator_stix_id(record: Mapping[str, Any]) -> str:
    """The STIX id an Indicator record goes out with."""
    source = record.get("source_object_id")
    if isinstance(source, str) and source.startswith("indicator--"):
        try:
            if uuid.UUID(source[len("indicator--") :]).variant == uuid.RFC_4122:
                return source
        except ValueError:
            pass  # not a STIX id after all: use the record id
    return f"indicator--{as_uuid(record['id'])}"


def _provenance(item: Delivered) -> dict[str, Any]:
    """Where this copy came from, as an external reference (no custom properties needed)."""
    note = f"delivered by jcu-broker from {item.sender}"
    if item.redacted:
        note += "; personal data redacted by policy"
    if item.retracted:
        note += "; retracted by the sender"
    return {"source_name": "jcu-broker", "external_id": item.message_id, "description": note}


def _modified(created: datetime, item: Delivered) -> datetime:
    received = as_time(item.received)
    return received if received > created else created


def _refs(record: Mapping[str, Any], item: Delivered) -> list[dict[str, Any]]:
    refs = [
        {k: v for k, v in ref.items() if v is not None}
        for ref in record.get("external_references", ())
    ]
    return [*refs, _provenance(item)]


def _indicator(item: Delivered, marking: str) -> Any:
    rec = item.record
    pattern = rec.get("pattern")
    pattern_type = rec.get("pattern_type") or "stix"
    if not pattern:
        if not rec.get("value"):
            raise ConfigError(f"indicator {rec.get('id')} has neither pattern nor value")
        pattern = to_pattern(Observable(str(rec["observable_type"]), str(rec["value"])))
        pattern_type = "stix"
    valid_from = as_time(rec["valid_from"])
    labels = list(rec.get("labels", ()))
    props: dict[str, Any] = {
        "id": indicator_stix_id(rec),
        "created": valid_from,
        "modified": _modified(valid_from, item),
        "pattern": pattern,
        "pattern_type": pattern_type,
        "valid_from": valid_from,
        "object_marking_refs": [marking],
        "external_references": _refs(rec, item),
    }
    optional = {
        "name": rec.get("name"),
        "description": rec.get("description"),
        "confidence": rec.get("confidence"),
        "valid_until": as_time(rec["valid_until"]) if rec.get("valid_until") else None,
        "kill_chain_phases": [dict(k) for k in rec.get("kill_chain_phases", ())] or None,
        "indicator_types": [x for x in labels if x in INDICATOR_TYPES] or None,
        "labels": [x for x in labels if x not in INDICATOR_TYPES] or None,
        "revoked": True if item.retracted else None,
    }
    props.update({k: v for k, v in optional.items() if v is not None})
    return stix2.v21.Indicator(**props)


def _report(item: Delivered, marking: str) -> list[Any]:
    rec = item.record
    rid = as_uuid(rec["id"])
    reported = as_time(rec["reported"])
    refs = [f"indicator--{as_uuid(i)}" for i in rec.get("indicator_ids", ())]
    common: dict[str, Any] = {
        "created": reported,
        "modified": _modified(reported, item),
        "object_marking_refs": [marking],
    }
    if item.retracted:
        common["revoked"] = True
    objects: list[Any] = []
    if not refs:  # a report must refer to something: the incident it is about
        incident = stix2.v21.Incident(id=f"incident--{rid}", name=str(rec["title"]), **common)
        objects.append(incident)
        refs = [incident.id]
    description = rec.get("description") or None
    report = stix2.v21.Report(
        id=f"report--{rid}",
        name=str(rec["title"]),
        published=reported,
        report_types=["threat-report"],
        object_refs=refs,
        labels=[
            f"severity:{rec['severity']}",
            f"category:{rec['category']}",
            f"status:{rec.get('status', 'OPEN')}",
        ],
        external_references=_refs(rec, item),
        **({"description": description} if description else {}),
        **common,
    )
    objects.append(report)
    return objects


def to_stix_bundle(items: Iterable[Delivered], *, bundle_id: str | None = None) -> dict[str, Any]:
    """A STIX 2.1 bundle (as a JSON-ready dict) of the Indicators and IncidentReports in `items`.

    Object ids are stable (re-delivery writes the same objects); the bundle id
    is a fresh UUIDv4 unless given. Other payload types raise
    ConfigError: route them to the JSON lines sink.
    """
    items = list(items)
    levels = sorted(
        {tlp_levels.normalise(i.tlp) for i in items if i.payload_type not in SOURCE_PAYLOADS},
        key=tlp_levels.rank,
    )
    objects: list[Any] = [
        stix2.v21.MarkingDefinition(**tlp_levels.stix_marking_definition(level), allow_custom=True)
        for level in levels
    ]
    as_written: list[dict[str, Any]] = []
    for item in items:
        marking = tlp_levels.stix_marking_id(item.tlp)
        if item.payload_type not in STIX_PAYLOADS:
            raise ConfigError(
                f"no STIX mapping for {item.payload_type} (message {item.message_id}); "
                "deliver it as JSON lines"
            )
        if item.payload_type in SOURCE_PAYLOADS:
            as_written.extend(source_objects(item))  # as the source wrote them, untouched
            continue
        try:
            if item.payload_type == "Indicator":
                objects.append(_indicator(item, marking))
            else:
                objects.extend(_report(item, marking))
        except (stix2.exceptions.STIXError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"message {item.message_id}: {item.payload_type} cannot be written as STIX 2.1: "
                + " ".join(str(exc).split())[:200]
            ) from None
    bundle_id = bundle_id or f"bundle--{uuid.uuid4()}"
    result: dict[str, Any] = {"type": "bundle", "id": bundle_id}
    if objects:  # none when every item carries the source's own objects: nothing to build
        bundle = stix2.v21.Bundle(objects=objects, id=bundle_id, allow_custom=True)
        result = json.loads(bundle.serialize())
    if as_written:
        result["objects"] = [*result.get("objects", []), *as_written]
    return result
