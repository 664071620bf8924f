"""STIX 2.1 bundle -> Indicator and IncidentReport records (STIX 2.0 bundles are upgraded first).

Each indicator and report is checked by the `stix2` library on its own, so one
bad object is skipped with the library's reason and the rest still publishes.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

import stix2
import stix2.exceptions

from broker.errors import InputFormatError
from broker.vocabulary import CATEGORIES
from connectors import tlp as tlp_levels
from connectors._input import as_text, load_json
from connectors._observables import summarise
from connectors._values import millis
from connectors.soc.result import NO_TLP, Item, ParseResult, Skipped

#: STIX has no severity; reports become IncidentReports of this severity (documented).
REPORT_SEVERITY = "MEDIUM"

_SUPPORTED_VERSIONS = ("2.0", "2.1")


def parse_stix(
    data: bytes | str, *, default_tlp: str | None, what: str = "STIX input"
) -> ParseResult:
    """Map a STIX bundle's indicators and reports to records; skip everything else with a reason."""
    default = tlp_levels.normalise(default_tlp) if default_tlp else None
    bundle = load_json(as_text(data, what), what)
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        found = bundle.get("type") if isinstance(bundle, dict) else type(bundle).__name__
        raise InputFormatError(f"{what}: not a STIX bundle (top-level type is {found!r})")
    objects = bundle.get("objects", [])
    if not isinstance(objects, list):
        raise InputFormatError(f"{what}: bundle 'objects' is not a list")
    version = _bundle_version(bundle, what)
    notes: tuple[str, ...] = ()
    if any(isinstance(o, dict) and _needs_upgrade(o, version) for o in objects):
        objects = [
            _upgrade(o) if isinstance(o, dict) and _needs_upgrade(o, version) else o
            for o in objects
        ]
        notes = ("upgraded from STIX 2.0 to 2.1",)

    definitions = {
        o["id"]: o
        for o in objects
        if isinstance(o, dict)
        and o.get("type") == "marking-definition"
        and isinstance(o.get("id"), str)
    }
    inherited = _report_markings(objects, definitions)

    items: list[Item] = []
    skipped: list[Skipped] = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            skipped.append(Skipped(f"objects[{index}]", "unknown", "not a STIX object (no type)"))
            continue
        otype = obj["type"]
        raw_id = obj.get("id")
        source_id = raw_id if isinstance(raw_id, str) else f"objects[{index}]"
        if otype not in ("indicator", "report"):
            skipped.append(Skipped(source_id, otype, _not_shared_reason(otype)))
            continue
        own = _levels(obj, definitions)
        level = tlp_levels.strictest([*own, *inherited.get(source_id, ()), default])
        if level is None:
            skipped.append(Skipped(source_id, otype, NO_TLP))
            continue
        try:
            parsed = stix2.parse(obj, allow_custom=True, version="2.1")
            item = _indicator(parsed, level) if otype == "indicator" else _report(parsed, level)
        except Exception as exc:
            # stix2 and stix2-patterns raise STIXError for most bad input but also
            # built-in errors (even UnboundLocalError for an empty pattern); one bad
            # object must only skip that object.
            skipped.append(Skipped(source_id, otype, f"invalid STIX {otype}: {_one_line(exc)}"))
            continue
        items.append(item)
    return ParseResult(tuple(items), tuple(skipped), "stix", notes)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _bundle_version(bundle: Mapping[str, Any], what: str) -> str:
    """'2.0' or '2.1' from the bundle (STIX 2.1 bundles carry no spec_version); else refuse."""
    declared = bundle.get("spec_version", "2.1")
    if declared not in _SUPPORTED_VERSIONS:
        raise InputFormatError(
            f"{what}: STIX spec_version {declared!r} is not supported; convert it to STIX 2.1"
        )
    return str(declared)


def _needs_upgrade(obj: Mapping[str, Any], bundle_version: str) -> bool:
    version = obj.get("spec_version")
    return version == "2.0" or (version is None and bundle_version == "2.0")


def _upgrade(obj: dict[str, Any]) -> dict[str, Any]:
    """The STIX 2.1 form of a 2.0 object, for the properties this connector reads."""
    new = copy.deepcopy(obj)
    new["spec_version"] = "2.1"
    if new.get("type") == "indicator":
        new.setdefault("pattern_type", "stix")
        if "labels" in new and "indicator_types" not in new:
            new["indicator_types"] = new.pop("labels")
    elif new.get("type") == "report" and "labels" in new and "report_types" not in new:
        new["report_types"] = new.pop("labels")
    return new


def _not_shared_reason(otype: str) -> str:
    if otype == "marking-definition":
        return "not shared as its own record: marking-definition (applied as TLP where referenced)"
    if (
        otype.startswith("x-")
        or otype in stix2.v21.OBJ_MAP
        or otype in stix2.v21.OBJ_MAP_OBSERVABLE
    ):
        return f"not shared as its own record: {otype}"
    return f"unknown STIX object type {otype!r}"


def _list(value: Any) -> list[Any]:
    """A property that should be a list, or [] when the input has something else there."""
    return value if isinstance(value, list) else []


def _marking_refs(obj: Mapping[str, Any]) -> list[str]:
    refs = [r for r in _list(obj.get("object_marking_refs")) if isinstance(r, str)]
    for granular in _list(obj.get("granular_markings")):
        if isinstance(granular, dict) and isinstance(granular.get("marking_ref"), str):
            refs.append(granular["marking_ref"])
    return refs


def _levels(obj: Mapping[str, Any], definitions: Mapping[str, Mapping[str, Any]]) -> list[str]:
    found = (tlp_levels.from_stix_marking(ref, definitions) for ref in _marking_refs(obj))
    return [level for level in found if level is not None]


def _report_markings(
    objects: list[Any], definitions: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[str]]:
    """A report's TLP applies to the objects it contains, as the bundle-level marking."""
    inherited: dict[str, list[str]] = {}
    for obj in objects:
        if isinstance(obj, dict) and obj.get("type") == "report":
            levels = _levels(obj, definitions)
            for ref in _list(obj.get("object_refs")):
                if isinstance(ref, str):
                    inherited.setdefault(ref, []).extend(levels)
    return inherited


def _uuid_of(stix_id: str) -> str:
    return str(uuid.UUID(stix_id.split("--", 1)[1]))


def _external_refs(obj: Any) -> list[dict[str, Any]]:
    return [
        {
            "source_name": ref["source_name"],
            "url": ref.get("url"),
            "external_id": ref.get("external_id"),
            "description": ref.get("description"),
        }
        for ref in obj.get("external_references", ())
    ]


def _categories(words: list[str]) -> frozenset[str]:
    return frozenset(w for w in words if w in CATEGORIES)


def _indicator(ind: Any, level: str) -> Item:
    pattern = str(ind["pattern"])
    pattern_type = str(ind.get("pattern_type", "stix"))
    observable_type, value = "unknown", None
    if pattern_type == "stix":
        summary = summarise(pattern)
        observable_type = ",".join(summary.observable_types) or "unknown"
        if summary.single is not None:
            observable_type, value = summary.single.observable_type, summary.single.value
    labels = list(dict.fromkeys([*ind.get("indicator_types", ()), *ind.get("labels", ())]))
    record = {
        "id": _uuid_of(ind["id"]),
        "observable_type": observable_type,
        "value": value,
        "pattern": pattern,
        "pattern_type": pattern_type,
        "name": ind.get("name"),
        "description": ind.get("description"),
        "confidence": ind.get("confidence"),
        "valid_from": millis(ind["valid_from"]),
        "valid_until": millis(ind["valid_until"]) if ind.get("valid_until") else None,
        "kill_chain_phases": [
            {"kill_chain_name": k["kill_chain_name"], "phase_name": k["phase_name"]}
            for k in ind.get("kill_chain_phases", ())
        ],
        "labels": labels,
        "external_references": _external_refs(ind),
        "source_object_id": str(ind["id"]),
    }
    return Item("Indicator", record, level, _categories(labels), str(ind["id"]))


def _report(rep: Any, level: str) -> Item:
    words = [*rep.get("report_types", ()), *rep.get("labels", ())]
    categories = _categories(words)
    record = {
        "id": _uuid_of(rep["id"]),
        "title": str(rep["name"]),
        "description": str(rep.get("description", "")),
        "reported": millis(rep["published"]),
        "detected": None,
        "status": "OPEN",
        "severity": REPORT_SEVERITY,
        "category": sorted(categories)[0] if categories else "other",
        "indicator_ids": [
            _uuid_of(ref) for ref in rep.get("object_refs", ()) if ref.startswith("indicator--")
        ],
        "external_references": _external_refs(rep),
    }
    return Item("IncidentReport", record, level, categories, str(rep["id"]))
