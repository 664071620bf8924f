"""The graph stays consistent per recipient: nothing dangling is delivered.

A relationship, a sighting, a report's `object_refs`, any reference from one
object to another means something only if the recipient also has what it
points at. Given who the policy lets receive each object, this works out per
recipient what else must be withheld: an object whose essential reference
(a relationship's ends, a sighting's indicator, a marking) points at
something the recipient does not get is withheld from it; an optional
reference is trimmed from its copy; a report whose every `object_refs` entry
is trimmed is withheld. Withholding one object can make another dangle, so
this runs until nothing changes. A target outside the file counts as received
if the sender's node already sent it to that recipient (and did not retract it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from broker.pep import Reach, Restriction
from connectors._stix_object import parse_selector
from connectors.soc.result import Item

#: Rule ids the graph check is audited under.
GRAPH_WITHHELD = "graph-reference-not-received"
GRAPH_TRIMMED = "graph-reference-trimmed"

#: reached_before(source id, organisation): whether the sender already shared it with them.
ReachedBefore = Callable[[str, str], bool]


def _under(path: str, removed: Sequence[str]) -> bool:
    try:
        steps = parse_selector(path)
    except ValueError:
        return False
    for other in removed:
        try:
            prefix = parse_selector(other)
        except ValueError:
            continue
        if steps[: len(prefix)] == prefix:
            return True
    return False


def resolve(
    items: Sequence[Item], reaches: Sequence[Reach], reached_before: ReachedBefore
) -> list[dict[str, tuple[Restriction, ...]]]:
    """Per item, what the graph withholds from each organisation (on top of the policy)."""
    receivers = [set(r.recipients) for r in reaches]
    by_id: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_id.setdefault(item.source_id, []).append(i)
    withheld: list[dict[str, Restriction]] = [{} for _ in items]
    trimmed: list[dict[str, tuple[Restriction, ...]]] = [{} for _ in items]
    outside: dict[tuple[str, str], bool] = {}

    def receives(target: str, org: str) -> bool:
        holders = by_id.get(target)
        if holders is not None:
            return any(org in receivers[j] for j in holders)
        key = (target, org)
        if key not in outside:
            outside[key] = reached_before(target, org)
        return outside[key]

    changed = True
    while changed:
        changed = False
        for i, item in enumerate(items):
            if not item.refs:
                continue
            removed: Mapping[str, tuple[str, ...]] = reaches[i].withheld
            for org in sorted(receivers[i]):
                gone = removed.get(org, ())
                missing = []
                cut: list[Restriction] = []
                some = kept = 0
                for ref in item.refs:
                    hidden = bool(gone) and _under(ref.path, gone)
                    if ref.kind == "some":
                        some += 1
                    if hidden:
                        continue  # the recipient's copy goes without it anyway
                    if receives(ref.target, org):
                        kept += ref.kind == "some"
                    elif ref.kind == "essential":
                        missing.append(ref)
                    else:
                        cut.append(
                            Restriction(
                                GRAPH_TRIMMED,
                                f"{ref.path} refers to {ref.target}, which {org} does not get",
                                (ref.path,),
                            )
                        )
                if missing or (some and not kept):
                    why = (
                        f"refers to {missing[0].target} ({missing[0].path}), "
                        f"which {org} does not get"
                        if missing
                        else f"{org} gets none of the objects its object_refs name"
                    )
                    withheld[i][org] = Restriction(GRAPH_WITHHELD, why)
                    trimmed[i].pop(org, None)
                    receivers[i].discard(org)
                    changed = True
                elif cut:
                    trimmed[i][org] = tuple(cut)
                else:
                    trimmed[i].pop(org, None)
    return [
        {**{org: (r,) for org, r in withheld[i].items()}, **trimmed[i]} for i in range(len(items))
    ]
