"""STIX 2.0 objects -> STIX 2.1, completely, or a one-line reason why not.

What changed between the two versions for the objects a bundle carries:
every object gains `spec_version: "2.1"`; the `labels` that were a required
type vocabulary become `<type>_types` (indicator, malware, report,
threat-actor, tool); indicators gain `pattern_type: "stix"`; malware gains the
required `is_family` (true: STIX 2.0 malware described families). Granular
markings that select a renamed property are moved with it, so a marking on
`labels.[1]` still covers the same value as `indicator_types.[1]`. The four
TLP 1.0 marking definitions become exactly their STIX 2.1 form (which names
them, `TLP:AMBER`...).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

from connectors.tlp import STIX_TLP1_IDS

#: 2.0 type -> the 2.1 property its `labels` became.
RENAMED_LABELS: Mapping[str, str] = {
    "indicator": "indicator_types",
    "malware": "malware_types",
    "report": "report_types",
    "threat-actor": "threat_actor_types",
    "tool": "tool_types",
}


class NotUpgradable(ValueError):
    """A STIX 2.0 object that has no faithful STIX 2.1 form; the message says why."""


def upgrade(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The STIX 2.1 form of a STIX 2.0 object; NotUpgradable if there is none."""
    new = copy.deepcopy(dict(obj))
    otype, oid = new.get("type"), new.get("id")
    if isinstance(oid, str) and "--" in oid:
        try:
            if uuid.UUID(oid.split("--", 1)[1]).variant != uuid.RFC_4122:
                raise ValueError
        except ValueError:
            raise NotUpgradable(
                f"STIX 2.0 id {oid!r} is not an RFC 4122 UUID, which STIX 2.1 requires"
            ) from None
    new["spec_version"] = "2.1"
    renamed = RENAMED_LABELS.get(str(otype))
    if renamed is not None and "labels" in new:
        if renamed in new:
            raise NotUpgradable(f"has both 'labels' and '{renamed}'")
        new[renamed] = new.pop("labels")
        new["granular_markings"] = [
            _rename_selectors(m, renamed) for m in new.get("granular_markings") or ()
        ]
        if not new["granular_markings"]:
            del new["granular_markings"]
    if otype == "marking-definition" and oid in STIX_TLP1_IDS:
        level = (new.get("definition") or {}).get("tlp")
        if not isinstance(level, str):
            raise NotUpgradable(f"TLP marking definition {oid} has no TLP level")
        new.setdefault("name", f"TLP:{level.upper()}")
    if otype == "indicator":
        new.setdefault("pattern_type", "stix")
    if otype == "malware":
        new.setdefault("is_family", True)
    return new


def _rename_selectors(marking: Any, renamed: str) -> Any:
    if not isinstance(marking, dict):
        return marking
    selectors = marking.get("selectors")
    if not isinstance(selectors, list):
        return marking
    moved = [
        renamed + s[len("labels") :]
        if isinstance(s, str) and (s == "labels" or s.startswith("labels."))
        else s
        for s in selectors
    ]
    return {**marking, "selectors": moved}
