"""MISP round trip on the real broker: one event in, one whole event out per recipient.

The fixture (tests/connectors/fixtures/misp/blackwidow-event.json) has composite
attributes (`ip-dst|port` twice on one address, `domain|ip`, `filename|sha256`),
a multi-line comment, objects with references, event and attribute galaxies,
tags, sightings, an event report, attributes marked TLP:AMBER and
TLP:AMBER+STRICT (one inside an object), and one attribute MISP keeps to "your
organisation only". blackwidow-event-v2.json is the same event a day later.
"""

from __future__ import annotations

import copy
import csv
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import stix2validator
from pymisp import MISPEvent

from broker.envelope import Labels
from broker.pep import Publisher, Subscriber
from connectors.isac._stix import sender_orgc
from connectors.isac.factory import make_sink
from connectors.soc import parse_misp
from connectors.soc.publishing import publish_parsed
from tests.connectors.roundtrip import (
    EVERYTHING,
    GREEN_ONLY,
    RECIPIENTS,
    SENDER,
    fixture,
    publish,
    receive_as,
)
from tests.world import World

pytestmark = pytest.mark.kafka


def _attribute(event: dict[str, Any], value: str) -> dict[str, Any]:
    found = [a for a in event["Attribute"] if a["value"] == value]
    found += [a for o in event["Object"] for a in o["Attribute"] if a["value"] == value]
    (one,) = found
    return one


def expected(source: dict[str, Any], recipient: str) -> dict[str, Any]:
    """The event each recipient must get, worked out from the fixture by hand."""
    event = copy.deepcopy(source)
    event["Orgc"] = sender_orgc(SENDER)
    # MISP keeps it to the sender's organisation: for nobody
    event["Attribute"].remove(_attribute(event, "Internal ticket 99"))
    if recipient == EVERYTHING:
        return event
    withheld = [_attribute(event, "Victim VPN concentrator serial 4711")]  # AMBER+STRICT
    if recipient == GREEN_ONLY:
        withheld += [
            _attribute(event, "phish@example.org"),  # AMBER
            _attribute(event, "C:\\Users\\victim\\AppData\\dropper.exe"),  # AMBER, in an object
        ]
    gone = {a["uuid"] for a in withheld}
    event["Attribute"] = [a for a in event["Attribute"] if a["uuid"] not in gone]
    for obj in event["Object"]:
        obj["Attribute"] = [a for a in obj["Attribute"] if a["uuid"] not in gone]
        if "ObjectReference" in obj:
            obj["ObjectReference"] = [
                r for r in obj["ObjectReference"] if r["referenced_uuid"] not in gone
            ]
    event["Sighting"] = [s for s in event["Sighting"] if s["attribute_uuid"] not in gone]
    event["Tag"] = [*event["Tag"], {"name": "jcu:redacted"}]
    return event


def _load(path: Path) -> dict[str, Any]:
    event = MISPEvent()
    event.load_file(str(path))  # PyMISP reads it
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


async def test_one_event_in_is_one_whole_event_out_per_recipient(
    world: World, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex
    newer = fixture("misp/blackwidow-event-v2.json", run)
    older = fixture("misp/blackwidow-event.json", run)
    source = json.loads(newer)["Event"]
    sent = await publish(world, newer, fmt="misp")
    (outcome,) = sent.published
    assert set(outcome.received_by) == set(RECIPIENTS)
    assert [s.reason for s in sent.skipped] == [
        "MISP distribution 'your organisation only': not shared"
    ]
    await publish(world, older, fmt="misp")  # an older version, arriving late

    for recipient in RECIPIENTS:
        out = tmp_path / recipient
        await receive_as(world, recipient, "misp", out)
        # one event file for the two versions (the directory holds the session's others too)
        got = _load(out / f"{source['uuid']}.misp.json")["Event"]
        want = expected(source, recipient)
        assert got == want, recipient
        assert sum(1 for a in got["Attribute"] if a["type"] == "ip-dst|port") == 2


async def test_a_new_version_of_an_event_updates_it_in_place(world: World, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    older = fixture("misp/blackwidow-event.json", run)
    newer = fixture("misp/blackwidow-event-v2.json", run)
    group = world.group(EVERYTHING)
    out = tmp_path / "misp"
    event_uuid = json.loads(older)["Event"]["uuid"]

    async def drain() -> dict[str, Any]:
        sink = make_sink("misp", str(out), EVERYTHING, world.settings(EVERYTHING))
        sub = Subscriber(EVERYTHING, world.ctx(EVERYTHING), sink, group_id=group, receipts=False)
        async with sub:
            await sub.run(until_idle=True)
        return _load(out / f"{event_uuid}.misp.json")["Event"]

    await publish(world, older, fmt="misp", recipients=(EVERYTHING,))
    first = await drain()
    assert first["timestamp"] == json.loads(older)["Event"]["timestamp"]
    await publish(world, newer, fmt="misp", recipients=(EVERYTHING,))
    second = await drain()
    assert second["uuid"] == first["uuid"]
    assert second["timestamp"] == json.loads(newer)["Event"]["timestamp"]
    assert second["info"].endswith("(update)")
    assert "198.51.100.23" in {a["value"] for a in second["Attribute"]}


async def test_a_misp_feed_loads_in_pymisp_and_lists_every_event(
    world: World, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex
    texts = [fixture("misp/blackwidow-event.json", run)]
    other = json.loads(fixture("misp/blackwidow-event.json", run + "-second"))
    other["Event"]["info"] = "A second event"
    texts.append(json.dumps(other))
    uuids = {json.loads(t)["Event"]["uuid"] for t in texts}
    for text in texts:
        await publish(world, text, fmt="misp", recipients=(EVERYTHING,))
    out = tmp_path / "feed"
    await receive_as(world, EVERYTHING, "misp-feed", out)

    manifest = json.loads((out / "manifest.json").read_text())
    assert uuids <= set(manifest)
    hashes = {tuple(row) for row in csv.reader((out / "hashes.csv").open())}
    for event_uuid in uuids:
        event = MISPEvent()
        event.load_file(str(out / f"{event_uuid}.json"))
        assert event.uuid == event_uuid
        assert manifest[event_uuid]["info"] == event.info
        assert manifest[event_uuid]["Orgc"]["name"] == SENDER
        assert {(h, event_uuid) for h in event.attributes_hashes("md5")} <= hashes
        bundle = json.loads((out / "stix" / f"{event_uuid}.json").read_text())
        result = stix2validator.validate_instance(
            bundle, stix2validator.ValidationOptions(version="2.1")
        )
        assert result.is_valid and not result.errors, [str(e) for e in result.errors]
        assert any(o["type"] == "report" for o in bundle["objects"])


async def test_this_community_only_stays_in_the_sender_s_community(world: World) -> None:
    """A dry run: an attribute MISP shares with "this community only" goes to enisa (the
    sender's civilian community) and not to eeas-intcen (diplomatic), which gets the rest."""
    doc = json.loads(fixture("misp/blackwidow-event.json", uuid.uuid4().hex))
    local = doc["Event"]["Attribute"][0]
    local["distribution"] = "1"
    parsed = parse_misp(json.dumps(doc), default_tlp="GREEN")
    async with Publisher(SENDER, world.ctx(SENDER)) as pub:
        report = await publish_parsed(
            pub,
            parsed,
            source="misp",
            labels_for=lambda i: Labels.of(i.tlp, categories=["malicious-code"]),
            recipients=("enisa", "eeas-intcen"),
            dry_run=True,
        )
    (outcome,) = report.published
    assert outcome.status == "would publish" and outcome.message_id is None
    assert set(outcome.received_by) == {"enisa", "eeas-intcen"}
    assert f"Attribute/{local['uuid']}" in outcome.redacted["eeas-intcen"]
    assert "enisa" not in outcome.redacted


async def test_the_parsed_file_is_kept_out_of_the_collector_s_scans_while_it_publishes(
    world: World,
) -> None:
    """bench.stix: full collections scanning the parsed file were a fifth of a publish's CPU."""
    import gc

    parsed = parse_misp(
        fixture("misp/blackwidow-event.json", uuid.uuid4().hex), default_tlp="GREEN"
    )
    frozen: list[int] = []
    async with Publisher(SENDER, world.ctx(SENDER)) as pub:
        await publish_parsed(
            pub,
            parsed,
            source="misp",
            labels_for=lambda i: Labels.of(i.tlp, categories=["malicious-code"]),
            recipients=("enisa",),
            on_item=lambda: frozen.append(gc.get_freeze_count()),
            dry_run=True,
        )
    assert frozen and all(n > 0 for n in frozen)  # the parsed event among what was frozen
    assert gc.get_freeze_count() == 0  # handed back once it returned
