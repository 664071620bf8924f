"""What parsing one input file yields: items to publish and objects skipped, each with a reason.

Nothing is dropped silently: every object of the input appears exactly once,
either as an `Item` or as a `Skipped` entry naming why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PayloadType = Literal["Indicator", "IncidentReport"]

#: Reason given for an object with no TLP anywhere: the connector never guesses one.
NO_TLP = "no TLP marking and no --tlp default"


@dataclass(frozen=True)
class Item:
    """One broker payload record to publish, with the labels derived from its source."""

    payload_type: PayloadType
    record: dict[str, Any]  # validates against schemas/<payload_type>.avsc
    tlp: str  # TLP 2.0 level: strictest of object marking, container marking and default
    categories: frozenset[str]  # ENISA taxonomy classes, when derivable
    source_id: str  # the input object's id (STIX id, MISP uuid, "line 7")


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
            {"source_id": i.source_id, "status": "published", "type": i.payload_type, "tlp": i.tlp}
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
