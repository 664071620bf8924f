"""What a MISP feed lists of an event: its manifest entry and the hashes of its values.

PyMISP makes both of a loaded `MISPEvent`, yet loading a whole event (every
attribute's tags, galaxies, uuids, timestamps; every object's template) costs
more than converting it: three quarters of a second for an event of 10,000 STIX
objects, at every rewrite of a growing event. `feed_entry` has PyMISP make the
same two of what they read: the manifest of the event without its attributes
and objects, the hashes of each attribute made of its type and value alone
(through the event or object that would hold it, which decide what is kept).
`tests/connectors/isac/test_misp_feed.py` holds them to the whole event's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymisp import MISPAttribute, MISPEvent, MISPObject

#: The hash of each value in a feed's hashes.csv.
ALGORITHM = "md5"
#: What an object holds that PyMISP loads one by one; none of it is in the feed's index.
_OBJECT_PARTS = frozenset({"Attribute", "ObjectReference"})


def feed_entry(event: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The manifest entry ({uuid: ...}) and value hashes of a MISP event (the value of
    "Event", as PyMISP writes it), in the order PyMISP gives them."""
    head = MISPEvent()
    head.load({"Event": {k: v for k, v in event.items() if k not in ("Attribute", "Object")}})
    hashes: list[str] = []
    holder = MISPEvent()  # not `head`: adding to a loaded event costs more at every attribute
    for attribute in event.get("Attribute") or ():
        added = holder.add_attribute(type=attribute["type"], value=attribute["value"])
        for one in added if isinstance(added, list) else [added]:
            hashes += one.hash_values(ALGORITHM)
    for obj in event.get("Object") or ():
        # the object as PyMISP loads it (its template decides the defaults), bar its attributes
        owner = MISPObject(obj["name"], standalone=False)
        owner.from_dict(**{k: v for k, v in obj.items() if k not in _OBJECT_PARTS})
        for attribute in obj.get("Attribute") or ():
            kept: MISPAttribute | None = owner.add_attribute(
                attribute.get("object_relation"), type=attribute["type"], value=attribute["value"]
            )
            if kept is not None:
                hashes += kept.hash_values(ALGORITHM)
    return head.manifest, hashes
