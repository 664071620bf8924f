"""STIX 2.1 bundle -> one StixObject record per object (STIX 2.0 objects are upgraded first).

Every object type travels (SDOs, SROs, sightings, SCOs, marking and extension
definitions, language content, custom `x-` objects and types an extension
definition declares), each whole, as the source wrote it. Each is checked by
the `stix2` library on its own, so one bad object is skipped with the
library's reason and the rest still publishes. Per object the parser works out
what the publisher and the graph check need: the object's own TLP, the parts a
stricter granular marking covers, and its references to other objects.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import stix2
import stix2.exceptions

from broker.errors import InputFormatError
from broker.pep import Part
from broker.vocabulary import CATEGORIES
from connectors import _stix_patterns
from connectors import tlp as tlp_levels
from connectors._input import as_text, load_json
from connectors._processes import map_chunks
from connectors._stix_object import (
    Reference,
    parse_selector,
    record_of,
    redact_record,
    references,
    required_properties,
    stix_time,
    version_of,
)
from connectors.soc._stix20 import NotUpgradable, upgrade
from connectors.soc.result import (
    NO_TLP,
    Item,
    ParseResult,
    Ref,
    RefKind,
    Skipped,
    category_set,
)

_SUPPORTED_VERSIONS = ("2.0", "2.1")
#: Objects whose TLP applies to the objects they contain, when those carry none.
_CONTAINERS = ("report", "grouping", "observed-data")
#: Definitions other objects point at: they go wherever an object that uses them goes.
_DEFINITIONS = ("marking-definition", "extension-definition")
#: Objects every STIX consumer knows by id: a reference to them never dangles.
WELL_KNOWN = frozenset(
    {*tlp_levels.STIX_TLP1_IDS, *tlp_levels.STIX_TLP2_IDS, tlp_levels.TLP2_EXTENSION_ID}
)
#: (type, top-level property) whose references cannot be removed from the object.
_ESSENTIAL = frozenset(
    {
        ("relationship", "source_ref"),
        ("relationship", "target_ref"),
        ("sighting", "sighting_of_ref"),
        ("language-content", "object_ref"),
    }
)
#: Types whose `object_refs` must keep at least one entry.
_SOME_OBJECT_REFS = frozenset({"report", "grouping", "note", "opinion", "observed-data"})
_NEW_TYPE_EXTENSIONS = frozenset({"new-sdo", "new-sco", "new-sro"})
#: Objects from which checking them in other processes pays for starting those (about
#: half a second each, `stix2`'s import; the check is about 150 µs an object).
PARALLEL_FROM = 20_000
PARALLEL_CHUNK = 1000


def parse_stix(
    data: bytes | str,
    *,
    default_tlp: str | None,
    what: str = "STIX input",
    workers: int = 1,
    stop: threading.Event | None = None,
) -> ParseResult:
    """Map every object of a STIX bundle to a StixObject item; skip what cannot go, with why.

    `workers` > 1: a big bundle's objects are checked by `stix2` in that many processes.
    `stop` set meanwhile: the checks end within a chunk (`Interrupted`)."""
    default = tlp_levels.normalise(default_tlp) if default_tlp else None
    bundle = load_json(as_text(data, what), what)
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        found = bundle.get("type") if isinstance(bundle, dict) else type(bundle).__name__
        raise InputFormatError(f"{what}: not a STIX bundle (top-level type is {found!r})")
    objects = bundle.get("objects", [])
    if not isinstance(objects, list):
        raise InputFormatError(f"{what}: bundle 'objects' is not a list")
    version = _bundle_version(bundle, what)
    bundle_id = bundle.get("id") if isinstance(bundle.get("id"), str) else None

    refused: list[tuple[int, Skipped]] = []
    #: (index, source id, type as written, the object as STIX 2.1)
    candidates: list[tuple[int, str, str, dict[str, Any]]] = []
    upgraded = 0
    for index, raw in enumerate(objects):
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            refused.append(
                (index, Skipped(f"objects[{index}]", "unknown", "not a STIX object (no type)"))
            )
            continue
        otype = raw["type"]
        source_id = raw["id"] if isinstance(raw.get("id"), str) else f"objects[{index}]"
        obj = raw
        if _needs_upgrade(raw, version):
            try:
                obj = upgrade(raw)
            except NotUpgradable as exc:
                reason = f"STIX 2.0 object not upgraded: {exc}"
                refused.append((index, Skipped(source_id, otype, reason)))
                continue
            upgraded += 1
        candidates.append((index, source_id, otype, obj))

    workers = workers if len(candidates) >= PARALLEL_FROM else 1
    problems = map_chunks(
        problems_of, [c[3] for c in candidates], workers=workers, chunk=PARALLEL_CHUNK, stop=stop
    )
    accepted: list[tuple[int, dict[str, Any]]] = []
    seen: dict[tuple[str, str | None], int] = {}
    for (index, source_id, otype, obj), problem in zip(candidates, problems, strict=True):
        if problem is not None:
            refused.append((index, Skipped(source_id, otype, problem)))
            continue
        key = (source_id, version_of(obj))
        if key in seen:
            reason = f"a second copy of objects[{seen[key]}] (same id and version)"
            refused.append((index, Skipped(source_id, otype, reason)))
            continue
        seen[key] = index
        accepted.append((index, obj))
    skipped = [s for _, s in sorted(refused, key=lambda r: r[0])]
    notes = [f"upgraded from STIX 2.0 to 2.1 ({upgraded} objects)"] if upgraded else []

    # what a marking means is honoured even where its definition object is invalid
    definitions = {
        str(o["id"]): o
        for o in (upgraded_form(o, version) for o in objects)
        if o.get("type") == "marking-definition" and isinstance(o.get("id"), str)
    }
    levels, folded = _levels(accepted, definitions, default)
    notes += folded
    categories = {o["id"]: _categories(o) for _, o in accepted}
    _definition_levels(accepted, levels, categories, default)

    items: list[Item] = []
    for _, obj in _in_source_order(accepted):
        level = levels.get(obj["id"])
        if level is None:
            skipped.append(Skipped(obj["id"], obj["type"], NO_TLP))
            continue
        found = references(obj)
        items.append(
            Item(
                "StixObject",
                record_of(obj, bundle_id=bundle_id, refs=found),
                level,
                category_set(categories[obj["id"]]),
                obj["id"],
                source_type=obj["type"],
                parts=_parts(obj, level, definitions),
                refs=tuple(_refs(obj, found)),
                version=version_of(obj),
                container=bundle_id,
                redactor=redact_record,
            )
        )
    return ParseResult(tuple(items), tuple(skipped), "stix", tuple(notes))


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


def upgraded_form(obj: Any, bundle_version: str) -> dict[str, Any]:
    """The object as STIX 2.1 (best effort: as it is when it cannot be upgraded)."""
    if not isinstance(obj, dict):
        return {}
    if _needs_upgrade(obj, bundle_version):
        try:
            return upgrade(obj)
        except NotUpgradable:
            return obj
    return obj


def _needs_upgrade(obj: Mapping[str, Any], bundle_version: str) -> bool:
    version = obj.get("spec_version")
    return version == "2.0" or (version is None and bundle_version == "2.0")


def problems_of(objects: Sequence[dict[str, Any]]) -> list[str | None]:
    """`_problem` of each object (a worker process's share of a big bundle)."""
    return [_problem(obj) for obj in objects]


def _problem(obj: dict[str, Any]) -> str | None:
    """Why this object cannot travel as STIX 2.1, or None."""
    otype = obj["type"]
    if otype == "bundle":
        return "a bundle inside a bundle is not an object"
    if not isinstance(obj.get("id"), str) or not obj["id"].startswith(f"{otype}--"):
        return f"invalid STIX {otype}: its id is not '{otype}--<uuid>'"
    known = otype in stix2.v21.OBJ_MAP or otype in stix2.v21.OBJ_MAP_OBSERVABLE
    if known:
        try:
            # As stix2.parse would, an indicator's simple pattern checked without ANTLR:
            # most of an indicator feed's parse was the grammar's.
            _stix_patterns.parse(obj, version="2.1")
        except Exception as exc:
            # stix2 and stix2-patterns raise STIXError for most bad input but also
            # built-in errors (even UnboundLocalError for an empty pattern); one bad
            # object must only skip that object.
            return f"invalid STIX {otype}: {_one_line(exc)}"
        return None
    if not (otype.startswith("x-") or _declared_by_extension(obj)):
        return (
            f"unknown STIX object type {otype!r} (not STIX 2.1, no x- prefix, "
            "no extension definition declaring it)"
        )
    return _custom_problem(obj)


def _declared_by_extension(obj: Mapping[str, Any]) -> bool:
    extensions = obj.get("extensions")
    return isinstance(extensions, dict) and any(
        isinstance(v, dict) and v.get("extension_type") in _NEW_TYPE_EXTENSIONS
        for v in extensions.values()
    )


#: The common properties of a custom object and the JSON shape each must have.
_COMMON_SHAPES: Mapping[str, tuple[type, type | None]] = {
    "spec_version": (str, None),
    "created_by_ref": (str, None),
    "revoked": (bool, None),
    "labels": (list, str),
    "confidence": (int, None),
    "lang": (str, None),
    "external_references": (list, dict),
    "object_marking_refs": (list, str),
    "granular_markings": (list, dict),
    "extensions": (dict, None),
}


def _custom_problem(obj: Mapping[str, Any]) -> str | None:
    """What the `stix2` library cannot check for a custom object: its id, its timestamps
    and the shape of its common properties."""
    otype, oid = obj["type"], obj.get("id")
    if not isinstance(oid, str) or not oid.startswith(f"{otype}--"):
        return f"invalid STIX {otype}: id {oid!r} is not '{otype}--<uuid>'"
    try:
        uuid.UUID(oid[len(otype) + 2 :])
        for key in ("created", "modified"):
            if key in obj:
                stix_time(str(obj[key]))
    except ValueError as exc:
        return f"invalid STIX {otype}: {_one_line(exc)}"
    for key, (shape, item) in _COMMON_SHAPES.items():
        if key not in obj:
            continue
        value = obj[key]
        wrong = not isinstance(value, shape) or (shape is int and isinstance(value, bool))
        if not wrong and item is not None:
            wrong = not value or not all(isinstance(v, item) for v in value)
        if not wrong and key == "granular_markings":
            wrong = not all(isinstance(m.get("selectors"), list) and m["selectors"] for m in value)
        if wrong:
            return f"invalid STIX {otype}: '{key}' is not a STIX {key.replace('_', ' ')} value"
    return None


def _list(value: Any) -> list[Any]:
    """A property that should be a list, or [] when the input has something else there."""
    return value if isinstance(value, list) else []


def _own_levels(obj: Mapping[str, Any], definitions: Mapping[str, Any]) -> list[str]:
    found = (
        tlp_levels.from_stix_marking(ref, definitions)
        for ref in _list(obj.get("object_marking_refs"))
        if isinstance(ref, str)
    )
    return [level for level in found if level is not None]


def _levels(
    accepted: list[tuple[int, dict[str, Any]]],
    definitions: Mapping[str, Any],
    default: str | None,
) -> tuple[dict[str, str], list[str]]:
    """Each object's TLP: its own marking, else its containers', never below the default.

    A granular marking stricter than that on a property the object cannot go without
    makes the whole object that strict (said in a note)."""
    inherited: dict[str, list[str]] = {}
    for _, obj in accepted:
        if obj["type"] in _CONTAINERS:
            own = _own_levels(obj, definitions)
            for ref in _list(obj.get("object_refs")):
                if isinstance(ref, str):
                    inherited.setdefault(ref, []).extend(own)
    levels: dict[str, str] = {}
    notes: list[str] = []
    for _, obj in accepted:
        if obj["type"] in _DEFINITIONS:
            continue
        own = _own_levels(obj, definitions) or inherited.get(obj["id"], [])
        level = tlp_levels.strictest([*own, default])
        if level is None:
            continue
        required = required_properties(obj["type"])
        for marking, selector in _granular(obj, definitions):
            if _top(selector) in required and tlp_levels.rank(marking) > tlp_levels.rank(level):
                notes.append(
                    f"{obj['id']}: TLP:{marking} on '{selector}', which it cannot go without, "
                    "applies to the whole object"
                )
                level = marking
        # every version of an object gets the strictest level any version has
        previous = levels.get(obj["id"])
        levels[obj["id"]] = tlp_levels.strictest([previous, level]) or level
    return levels, notes


def _definition_levels(
    accepted: list[tuple[int, dict[str, Any]]],
    levels: dict[str, str],
    categories: dict[str, set[str]],
    default: str | None,
) -> None:
    """Marking and extension definitions go wherever an object that uses them goes: the
    least strict TLP of their users, the union of their categories (their own marking,
    if any, still applies)."""
    users: dict[str, list[str]] = {}
    for _, obj in accepted:
        if obj["type"] in _DEFINITIONS:
            continue
        for ref in references(obj):
            if ref.target.startswith(_DEFINITIONS):
                users.setdefault(ref.target, []).append(obj["id"])
    for _, obj in accepted:
        if obj["type"] not in _DEFINITIONS:
            continue
        own = _own_levels(obj, {})
        using = [u for u in users.get(obj["id"], []) if u in levels]
        if using:
            least = min((levels[u] for u in using), key=tlp_levels.rank)
            levels[obj["id"]] = tlp_levels.strictest([least, *own]) or least
            for u in using:
                categories[obj["id"]] |= categories.get(u, set())
        else:
            level = tlp_levels.strictest([*own, default])
            if level is not None:
                levels[obj["id"]] = level


def _granular(obj: Mapping[str, Any], definitions: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(TLP level, selector) of every granular marking that is a TLP marking."""
    for marking in _list(obj.get("granular_markings")):
        if not isinstance(marking, dict) or not isinstance(marking.get("marking_ref"), str):
            continue
        level = tlp_levels.from_stix_marking(marking["marking_ref"], definitions)
        if level is None:
            continue
        for selector in _list(marking.get("selectors")):
            if isinstance(selector, str):
                yield level, selector


def _top(selector: str) -> str:
    try:
        return str(parse_selector(selector)[0])
    except (ValueError, IndexError):
        return selector


def _parts(obj: Mapping[str, Any], level: str, definitions: Mapping[str, Any]) -> tuple[Part, ...]:
    """The properties a granular marking stricter than the object's TLP covers."""
    strictest: dict[str, str] = {}
    for marking, selector in _granular(obj, definitions):
        if tlp_levels.rank(marking) > tlp_levels.rank(level):
            found = tlp_levels.strictest([strictest.get(selector), marking])
            strictest[selector] = found or marking
    return tuple(Part(s, tlp_levels.normalise(t)) for s, t in sorted(strictest.items()))


def _refs(obj: Mapping[str, Any], found: Iterable[Reference]) -> Iterable[Ref]:
    for ref in found:
        if ref.target not in WELL_KNOWN:
            yield Ref(ref.path, ref.target, _kind(obj, ref))


def _kind(obj: Mapping[str, Any], ref: Reference) -> RefKind:
    otype, top = obj["type"], _top(ref.path)
    if (
        top in ("object_marking_refs", "granular_markings", "extensions")
        or (otype, top) in _ESSENTIAL
    ):
        return "essential"  # a marking cannot be removed, nor a relationship's ends
    if top == "object_refs" and otype in _SOME_OBJECT_REFS:
        return "trim" if otype == "observed-data" and "objects" in obj else "some"
    if top in required_properties(otype):
        return "essential"
    return "trim"


def _categories(obj: Mapping[str, Any]) -> set[str]:
    words = [
        w
        for key, value in obj.items()
        if key == "labels" or key.endswith("_types")
        for w in _list(value)
        if isinstance(w, str)
    ]
    return {w for w in words if w in CATEGORIES}


def _in_source_order(
    accepted: list[tuple[int, dict[str, Any]]],
) -> list[tuple[int, dict[str, Any]]]:
    """Input order, except that the versions of one id go together, oldest first, where
    the first of them stood: they then reach every recipient in the source's order."""
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for entry in accepted:
        groups.setdefault(entry[1]["id"], []).append(entry)
    out: list[tuple[int, dict[str, Any]]] = []
    for versions in groups.values():
        out += sorted(versions, key=lambda e: (_version_key(e[1]), e[0]))
    return out


def _version_key(obj: Mapping[str, Any]) -> str:
    found = version_of(obj)
    if found is None:
        return ""
    return stix_time(found).isoformat()
