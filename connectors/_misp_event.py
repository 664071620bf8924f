"""A whole MISP event as the broker carries it (`eu.jcu.v1.MispEvent`), and its parts.

The record types the event's summary (uuid, info, timestamps, levels, tags,
galaxy clusters, counts); `event` keeps the whole event, every attribute,
object, reference, tag, galaxy, sighting and event report, as canonical JSON.
Parts of an event are its attributes (`Attribute/<uuid>`, top-level or inside
an object) and objects (`Object/<uuid>`); `remove_parts` takes some out with
everything that points at them (object references, sightings), so what is
left never refers to what was removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from connectors._stix_object import canonical_json


def attribute_part(uuid: str) -> str:
    return f"Attribute/{uuid}"


def object_part(uuid: str) -> str:
    return f"Object/{uuid}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def tag_names(container: Mapping[str, Any]) -> list[str]:
    return [
        t["name"]
        for t in _list(container.get("Tag"))
        if isinstance(t, dict) and isinstance(t.get("name"), str)
    ]


def all_attributes(event: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """Every attribute of the event: top-level, then those inside objects."""
    for a in _list(event.get("Attribute")):
        if isinstance(a, dict):
            yield a
    for o in _list(event.get("Object")):
        if isinstance(o, dict):
            for a in _list(o.get("Attribute")):
                if isinstance(a, dict):
                    yield a


def epoch(value: Any) -> datetime | None:
    """A MISP timestamp (epoch seconds, as int or string) as an aware datetime."""
    if value in (None, "", "0", 0):
        return None
    return datetime.fromtimestamp(int(str(value)), UTC)


def _galaxy_clusters(event: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    holders: list[Mapping[str, Any]] = [event, *all_attributes(event)]
    for holder in holders:
        for galaxy in _list(holder.get("Galaxy")):
            if not isinstance(galaxy, dict):
                continue
            for cluster in _list(galaxy.get("GalaxyCluster")):
                if isinstance(cluster, dict):
                    name = cluster.get("tag_name") or cluster.get("value")
                    if isinstance(name, str):
                        found.append(name)
    found += [t for t in tag_names(event) if t.startswith("misp-galaxy:")]
    return sorted(set(found))


def event_time(event: Mapping[str, Any]) -> datetime:
    """The event's version: `timestamp`, else `publish_timestamp`, else its date at midnight."""
    for key in ("timestamp", "publish_timestamp"):
        found = epoch(event.get(key))
        if found is not None:
            return found
    raw = event.get("date")
    if isinstance(raw, str):
        day = date.fromisoformat(raw)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    raise ValueError("no timestamp, publish_timestamp or date")


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def record_of(event: Mapping[str, Any]) -> dict[str, Any]:
    """The `eu.jcu.v1.MispEvent` record of an event (the value of "Event")."""
    when = event_time(event)
    orgc = event.get("Orgc")
    distribution = event.get("distribution")
    return {
        "uuid": str(event["uuid"]),
        "info": str(event.get("info") or ""),
        "date": event.get("date") if isinstance(event.get("date"), str) else None,
        "timestamp": when,
        "publish_timestamp": epoch(event.get("publish_timestamp")),
        "threat_level_id": _int(event.get("threat_level_id"), 4),
        "analysis": _int(event.get("analysis"), 0),
        "distribution": _int(distribution, 0) if distribution not in (None, "") else None,
        "source_orgc": orgc.get("name") if isinstance(orgc, dict) else None,
        "tags": tag_names(event),
        "galaxy_clusters": _galaxy_clusters(event),
        "attribute_count": sum(1 for _ in all_attributes(event)),
        "object_count": len([o for o in _list(event.get("Object")) if isinstance(o, dict)]),
        "event": canonical_json(event),
    }


def event_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The whole event a record carries (the value of "Event")."""
    event: dict[str, Any] = json.loads(str(record["event"]))
    return event


def remove_parts(event: Mapping[str, Any], parts: Iterable[str]) -> dict[str, Any]:
    """A copy of the event without the named attributes and objects, nor anything that
    points at them: object references, sightings; an object left with no attribute goes too."""
    gone = set(parts)
    out: dict[str, Any] = json.loads(canonical_json(event))

    def keep(attribute: Any) -> bool:
        return not (
            isinstance(attribute, dict) and attribute_part(str(attribute.get("uuid"))) in gone
        )

    if "Attribute" in out:
        out["Attribute"] = [a for a in _list(out["Attribute"]) if keep(a)]
    objects = []
    removed_uuids = {p.split("/", 1)[1] for p in gone}
    for obj in _list(out.get("Object")):
        if not isinstance(obj, dict):
            continue
        if object_part(str(obj.get("uuid"))) in gone:
            continue
        had = _list(obj.get("Attribute"))
        obj["Attribute"] = [a for a in had if keep(a)]
        if had and not obj["Attribute"]:
            removed_uuids.add(str(obj.get("uuid")))
            continue
        objects.append(obj)
    if "Object" in out:
        out["Object"] = objects
    for obj in objects:
        if "ObjectReference" in obj:
            obj["ObjectReference"] = [
                r
                for r in _list(obj["ObjectReference"])
                if not (
                    isinstance(r, dict)
                    and (
                        str(r.get("referenced_uuid")) in removed_uuids
                        or str(r.get("object_uuid")) in removed_uuids
                    )
                )
            ]
    if "Sighting" in out:
        out["Sighting"] = [
            s
            for s in _list(out["Sighting"])
            if not (isinstance(s, dict) and str(s.get("attribute_uuid")) in removed_uuids)
        ]
    return out


def redact_record(record: Mapping[str, Any], parts: frozenset[str]) -> dict[str, Any]:
    """The record of the event without `parts`: a `broker.pep.Redactor`."""
    return record_of(remove_parts(event_of(record), parts))
