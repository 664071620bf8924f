"""A STIX 2.1 object as the broker carries it (`eu.jcu.v1.StixObject`), and its parts.

The record types the common properties, for routing, ordering and graph checks
without parsing; `object` keeps the whole object as canonical JSON, which is
what the receiving side writes out, so no property is lost. Parts of an object
are addressed with STIX granular-marking selectors (`description`,
`external_references.[0]`, `x_custom.sub`), and `remove_parts` takes some out
the way a STIX producer would: list elements removed with later selectors
renumbered, granular markings kept exactly for what remains.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: A parsed selector: property names and list indices, e.g. ("object_refs", 2).
Path = tuple[str | int, ...]

#: Properties every STIX object needs to remain an object (a marking on one of them
#: cannot be honoured by removing it: the whole object is then as strict as the marking).
COMMON_REQUIRED = frozenset({"type", "id", "spec_version", "created", "modified"})
#: Required properties the `stix2` classes default-fill, so their metadata does not say so.
_EXTRA_REQUIRED: Mapping[str, frozenset[str]] = {
    "indicator": frozenset({"valid_from"}),
    "report": frozenset({"published"}),
    "marking-definition": frozenset({"definition", "definition_type"}),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: YYYY-MM-DDTHH:MM:SS, ASCII digits only.
_PLAIN_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")


def canonical_json(obj: Any) -> str:
    """UTF-8 JSON with sorted keys and no insignificant whitespace (stable for equal objects)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stix_time(value: str) -> datetime:
    """A STIX timestamp (RFC 3339, UTC, any precision) as an aware datetime, to the microsecond."""
    text = value.strip()
    if not text.endswith(("Z", "z")):
        raise ValueError(f"not a STIX timestamp (must end in Z): {value!r}")
    head, _, fraction = text[:-1].partition(".")
    if _PLAIN_TIME.fullmatch(head):
        # the form nearly every producer writes, read without strptime (a fifth of a
        # feed's parse went there); datetime() refuses what strptime would refuse in it
        base = datetime(
            int(head[:4]), int(head[5:7]), int(head[8:10]),
            int(head[11:13]), int(head[14:16]), int(head[17:19]), tzinfo=UTC,
        )  # fmt: skip
    else:
        base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    if fraction and not fraction.isdigit():
        raise ValueError(f"not a STIX timestamp: {value!r}")
    return base + timedelta(microseconds=int((fraction or "0")[:6].ljust(6, "0")))


def version_of(obj: Mapping[str, Any]) -> str | None:
    """The version string of an object: `modified`, else `created`, else None (most SCOs)."""
    found = obj.get("modified") or obj.get("created")
    return found if isinstance(found, str) else None


# -- selectors ---------------------------------------------------------------------------


def parse_selector(selector: str) -> Path:
    """'external_references.[0].url' -> ('external_references', 0, 'url')."""
    path: list[str | int] = []
    for token in selector.split("."):
        if token.startswith("[") and token.endswith("]") and token[1:-1].isdigit():
            path.append(int(token[1:-1]))
        elif token:
            path.append(token)
        else:
            raise ValueError(f"not a STIX selector: {selector!r}")
    return tuple(path)


def format_selector(path: Path) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in path)


def _covers(prefix: Path, path: Path) -> bool:
    return path[: len(prefix)] == prefix


def _remap(path: Path, removed: Sequence[Path]) -> Path | None:
    """Where `path` is once `removed` are taken out: None if it went with them, else with
    every list index after a removed element moved down."""
    if any(_covers(r, path) for r in removed):
        return None
    out = list(path)
    for k, step in enumerate(path):
        if isinstance(step, int):
            parent = path[:k]
            before = 0
            for r in removed:
                last = r[-1]
                if len(r) == k + 1 and r[:k] == parent and isinstance(last, int) and last < step:
                    before += 1
            out[k] = step - before
    return tuple(out)


def _delete(node: Any, path: Path) -> None:
    *parents, last = path
    for step in parents:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                return
            node = node[step]
    if isinstance(last, int):
        if isinstance(node, list) and last < len(node):
            node[last] = _GONE
    elif isinstance(node, dict):
        node.pop(last, None)


class _Gone:
    """A list element marked for removal (removed after all deletions, so indices hold)."""


_GONE = _Gone()


def _sweep(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in list(node.items()):
            node[key] = _sweep(value)
        return node
    if isinstance(node, list):
        return [_sweep(v) for v in node if v is not _GONE]
    return node


def _drop_emptied(node: Any, before: Any) -> Any:
    """Remove properties whose list lost every element (STIX forbids empty lists)."""
    if isinstance(node, dict) and isinstance(before, dict):
        for key in list(node):
            value = node[key]
            if isinstance(value, list) and not value and before.get(key):
                del node[key]
            else:
                _drop_emptied(value, before.get(key))
    elif isinstance(node, list) and isinstance(before, list):
        for value, old in zip(node, before, strict=False):
            _drop_emptied(value, old)
    return node


def _resolves(node: Any, path: Path) -> bool:
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return False
        elif not isinstance(node, dict) or step not in node:
            return False
        node = node[step]
    return True


def remove_parts(obj: Mapping[str, Any], selectors: Sequence[str]) -> dict[str, Any]:
    """A copy of `obj` without the properties `selectors` name, granular markings kept
    exactly for what remains (their selectors renumbered, emptied ones dropped).

    A list left empty is removed (STIX has no empty lists); unknown selectors
    are ignored.
    """
    removed = sorted({parse_selector(s) for s in selectors}, key=lambda p: (len(p), str(p)))
    snapshot = json.loads(canonical_json(obj))
    out = json.loads(canonical_json(obj))
    markings = out.pop("granular_markings", None)
    for path in removed:
        _delete(out, path)
    out = _sweep(out)
    _drop_emptied(out, {k: v for k, v in snapshot.items() if k != "granular_markings"})
    if isinstance(markings, list):
        kept = []
        for marking in markings:
            if not isinstance(marking, dict):
                continue
            selectors_kept = []
            for selector in marking.get("selectors") or ():
                try:
                    moved = _remap(parse_selector(str(selector)), removed)
                except ValueError:
                    moved = None
                if moved is not None and _resolves(out, moved):
                    selectors_kept.append(format_selector(moved))
            if selectors_kept:
                kept.append({**marking, "selectors": selectors_kept})
        if kept:
            out["granular_markings"] = kept
    result: dict[str, Any] = out
    return result


# -- references ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reference:
    """One STIX id an object refers to, and where (`path` as a selector)."""

    path: str
    target: str


def references(obj: Mapping[str, Any]) -> list[Reference]:
    """Every `*_ref` and `*_refs` value anywhere in the object, plus extension-definition
    keys under `extensions`, in document order."""
    found: list[Reference] = []
    _walk_refs(obj, (), found)
    return found


def _walk_refs(node: Mapping[str, Any] | list[Any], path: Path, found: list[Reference]) -> None:
    # Only containers are descended into: a walk per object of a million-object feed.
    if isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, dict | list):
                _walk_refs(value, (*path, i), found)
        return
    for key, value in node.items():
        if key.endswith("_ref") and isinstance(value, str):
            found.append(Reference(format_selector((*path, key)), value))
        elif key.endswith("_refs") and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    found.append(Reference(format_selector((*path, key, i)), item))
        elif isinstance(value, dict | list):
            if key == "extensions" and isinstance(value, dict) and not path:
                for name in value:
                    if name.startswith("extension-definition--"):
                        found.append(Reference(format_selector((*path, key, name)), name))
            _walk_refs(value, (*path, key), found)


# -- the record ----------------------------------------------------------------------------


def _micros(value: Any) -> datetime | None:
    return stix_time(value) if isinstance(value, str) else None


def _external_references(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    found = obj.get("external_references")
    for ref in found if isinstance(found, list) else ():
        if isinstance(ref, dict) and isinstance(ref.get("source_name"), str):
            out.append(
                {
                    "source_name": ref["source_name"],
                    "url": ref.get("url") if isinstance(ref.get("url"), str) else None,
                    "external_id": (
                        ref.get("external_id") if isinstance(ref.get("external_id"), str) else None
                    ),
                    "description": (
                        ref.get("description") if isinstance(ref.get("description"), str) else None
                    ),
                }
            )
    return out


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def record_of(
    obj: Mapping[str, Any],
    *,
    bundle_id: str | None = None,
    refs: Sequence[Reference] | None = None,
) -> dict[str, Any]:
    """The `eu.jcu.v1.StixObject` record of a (valid) STIX 2.1 object (`refs`: its
    `references`, when the caller has them already)."""
    markings = []
    found = obj.get("granular_markings")
    for marking in found if isinstance(found, list) else ():
        if isinstance(marking, dict):
            markings.append(
                {
                    "marking_ref": marking.get("marking_ref"),
                    "lang": marking.get("lang"),
                    "selectors": _strings(marking.get("selectors")),
                }
            )
    confidence = obj.get("confidence")
    extensions = obj.get("extensions")
    return {
        "id": str(obj["id"]),
        "type": str(obj["type"]),
        "spec_version": str(obj.get("spec_version") or "2.1"),
        "created": _micros(obj.get("created")),
        "modified": _micros(obj.get("modified")),
        "created_by_ref": (
            obj.get("created_by_ref") if isinstance(obj.get("created_by_ref"), str) else None
        ),
        "revoked": obj.get("revoked") is True,
        "confidence": confidence if isinstance(confidence, int) else None,
        "lang": obj.get("lang") if isinstance(obj.get("lang"), str) else None,
        "labels": _strings(obj.get("labels")),
        "external_references": _external_references(obj),
        "object_marking_refs": _strings(obj.get("object_marking_refs")),
        "granular_markings": markings,
        "extensions": sorted(extensions) if isinstance(extensions, dict) else [],
        "refs": sorted({r.target for r in (references(obj) if refs is None else refs)}),
        "bundle_id": bundle_id,
        "object": canonical_json(obj),
    }


def object_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The whole STIX object a record carries."""
    obj: dict[str, Any] = json.loads(str(record["object"]))
    return obj


def redact_record(record: Mapping[str, Any], parts: frozenset[str]) -> dict[str, Any]:
    """The record of the object without `parts` (selectors): a `broker.pep.Redactor`."""
    obj = remove_parts(object_of(record), sorted(parts))
    return record_of(obj, bundle_id=record.get("bundle_id"))


def required_properties(stix_type: str) -> frozenset[str]:
    """Properties an object of this type cannot go without (per the `stix2` classes)."""
    from stix2.v21 import OBJ_MAP, OBJ_MAP_OBSERVABLE

    cls = OBJ_MAP.get(stix_type) or OBJ_MAP_OBSERVABLE.get(stix_type)
    declared = (
        {name for name, prop in cls._properties.items() if prop.required}
        if cls is not None
        else set()
    )
    return frozenset(declared) | COMMON_REQUIRED | _EXTRA_REQUIRED.get(stix_type, frozenset())
