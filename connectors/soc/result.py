"""What parsing one input file yields: items to publish and objects skipped, each with a reason.

Nothing is dropped silently: every object of the input appears exactly once,
either as an `Item` or as a `Skipped` entry naming why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from broker.pep import Part, Redactor

PayloadType = Literal["Indicator", "IncidentReport", "StixObject", "MispEvent"]
#: How a reference constrains who gets the object that holds it (see connectors/soc/_graph.py):
#: "essential": no reference, no object; "trim": the reference is removed for a recipient who
#: does not get its target; "some": trimmed likewise, but at least one of the object's "some"
#: references must remain (a report's object_refs).
RefKind = Literal["essential", "trim", "some"]

#: Reason given for an object with no TLP anywhere: the connector never guesses one.
NO_TLP = "no TLP marking and no --tlp default"
_NO_CATEGORIES: frozenset[str] = frozenset()


def category_set(categories: Iterable[str]) -> frozenset[str]:
    """An item's categories (every item without any shares one empty set)."""
    found = frozenset(categories)
    return found if found else _NO_CATEGORIES


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference from one input object to another (by source id), at `path` in it."""

    path: str  # a STIX selector ("object_refs.[2]"), or the part it belongs to (MISP)
    target: str  # the referenced object's source id
    kind: RefKind = "trim"


@dataclass(frozen=True, slots=True)
class Item:
    """One broker payload record to publish, with the labels derived from its source.
    (Slotted, and an item without categories shares one empty set: a million-object feed
    holds a million items.)"""

    payload_type: PayloadType
    record: dict[str, Any]  # validates against schemas/<payload_type>.avsc
    tlp: str  # TLP 2.0 level: strictest of object marking, container marking and default
    categories: frozenset[str]  # ENISA taxonomy classes, when derivable
    source_id: str  # the input object's id (STIX id, MISP uuid, "line 7")
    #: The input object's own type ("indicator", "misp-event"), for reports; else payload_type.
    source_type: str = ""
    #: Parts marked stricter than `tlp` (granular markings, MISP attributes with their own TLP).
    parts: tuple[Part, ...] = ()
    #: References to other objects, which a recipient must get too (connectors/soc/_graph.py).
    refs: tuple[Ref, ...] = ()
    #: The source's version of the object (STIX `modified`, MISP `timestamp`), if any.
    version: str | None = None
    #: The source container (STIX bundle id, MISP event uuid), if any.
    container: str | None = None
    #: Parts that only the sender's own community gets (MISP "this community only").
    community_parts: tuple[str, ...] = ()
    #: What the object is where `source_id` is only a position (a CSV row: its normalised
    #: fields, docs/connectors.md): the publisher derives its message id from it.
    identity: str | None = None
    #: Removes parts (by name) from `record`; needed when `parts` or `refs` can withhold some.
    redactor: Redactor | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        return self.source_type or self.payload_type


@dataclass(frozen=True)
class Skipped:
    """An input object that is not published, and why."""

    source_id: str
    source_type: str
    reason: str


@dataclass(frozen=True)
class ParseResult:
    """Everything one input file produced."""

    items: tuple[Item, ...]
    skipped: tuple[Skipped, ...]
    format: str  # "stix", "misp" or "csv"
    notes: tuple[str, ...] = field(default=())  # file-level remarks, e.g. "upgraded from STIX 2.0"

    def summary(self) -> list[dict[str, str]]:
        """One row per input object: published or skipped, with the reason."""
        rows = [
            {"source_id": i.source_id, "status": "published", "type": i.kind, "tlp": i.tlp}
            for i in self.items
        ]
        rows += [
            {
                "source_id": s.source_id,
                "status": "skipped",
                "type": s.source_type,
                "reason": s.reason,
            }
            for s in self.skipped
        ]
        return rows
