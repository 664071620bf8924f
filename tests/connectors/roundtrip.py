"""Helpers of the round-trip tests: isolate a fixture's ids per run, publish, receive.

The session's Kafka is shared by every test, and subscribers read their topics
from the start: each run gives the fixture's objects ids of its own, so what a
test reads back is what it published.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from broker.envelope import Labels
from broker.pep import Publisher, Subscriber
from broker.pep.sink import Sink
from connectors import tlp
from connectors.isac.factory import make_sink
from connectors.soc import Item, parse_misp, parse_stix
from connectors.soc.publishing import PublishReport, publish_parsed
from tests.world import World

FIXTURES = Path(__file__).parent / "fixtures"
SENDER = "soc-fr"
#: Named recipients of the round trips (TLP:RED parts go to named recipients only):
#: csirts-network is cleared for everything, isac-energy for AMBER but not AMBER+STRICT
#: (a member, not an operational participant), isac-finance for GREEN only (no mandate for
#: intrusion-attempts, the category of the fixtures). (Not enisa and cert-eu, whose
#: situation reports the console tests read: these fixtures would crowd them.)
EVERYTHING, NO_STRICT, GREEN_ONLY = "csirts-network", "isac-energy", "isac-finance"
RECIPIENTS = (EVERYTHING, NO_STRICT, GREEN_ONLY)
CATEGORY = "intrusion-attempts"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: The OASIS TLP marking definitions: the same objects in every run, so kept as they are.
TLP_MARKINGS = frozenset((*tlp.STIX_TLP1_IDS, *tlp.STIX_TLP2_IDS, tlp.TLP2_EXTENSION_ID))
_KEEP = {
    mid.split("--", 1)[1] for mid in (*tlp.STIX_TLP1_IDS, *tlp.STIX_TLP2_IDS, tlp.TLP2_EXTENSION_ID)
}


def isolate(text: str, run: str) -> str:
    """`text` with every uuid replaced by one of this run's own (the OASIS TLP ids kept)."""
    space = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:jcu-test:{run}")

    def swap(m: re.Match[str]) -> str:
        return m.group(0) if m.group(0) in _KEEP else str(uuid.uuid5(space, m.group(0)))

    return _UUID.sub(swap, text)


def fixture(name: str, run: str) -> str:
    return isolate((FIXTURES / name).read_text(encoding="utf-8"), run)


def labels_for(item: Item) -> Labels:
    return Labels.of(item.tlp, categories=sorted(item.categories | {CATEGORY}))


async def publish(
    world: World, text: str, *, fmt: str, recipients: Iterable[str] = RECIPIENTS
) -> PublishReport:
    parsed = (
        parse_stix(text, default_tlp="GREEN")
        if fmt == "stix"
        else parse_misp(text, default_tlp="GREEN")
    )
    async with Publisher(SENDER, world.ctx(SENDER)) as pub:
        return await publish_parsed(
            pub, parsed, source=fmt, labels_for=labels_for, recipients=tuple(recipients)
        )


async def receive(world: World, participant: str, sink: Sink) -> None:
    sub = Subscriber(
        participant, world.ctx(participant), sink, group_id=world.group(participant), receipts=False
    )
    async with sub:
        await sub.run(until_idle=True)


async def receive_as(world: World, participant: str, fmt: str, out: Path) -> None:
    await receive(
        world, participant, make_sink(fmt, str(out), participant, world.settings(participant))
    )


def stix_files(directory: Path, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The objects of `ids` found in a STIX sink directory (one bundle file per id)."""
    found: dict[str, dict[str, Any]] = {}
    for oid in ids:
        path = directory / f"{oid}.stix.json"
        if path.exists():
            (obj,) = json.loads(path.read_text())["objects"]
            found[oid] = obj
    return found
