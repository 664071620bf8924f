"""Every sample (ours, and the public ones): SOC connector -> Kafka -> ISAC connector, whole.

Published as soc-fr with a default TLP, received as csirts-network (STIX files)
and commission (MISP files), both cleared for everything published: every STIX object
comes back equal to what went in (STIX 2.0 samples as their STIX 2.1 upgrade),
every MISP event equal to the one sent (its creator now the sender), and each
also crosses over: the STIX bundles become MISP events PyMISP loads, the MISP
events STIX objects the OASIS validator accepts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import stix2validator
from pymisp import MISPEvent

from broker.envelope import Labels
from broker.pep import Publisher
from connectors._misp_event import event_of
from connectors._stix_object import object_of
from connectors.isac._stix import sender_orgc
from connectors.soc import Item, ParseResult, parse_misp, parse_stix
from connectors.soc.publishing import publish_parsed
from tests.connectors.roundtrip import TLP_MARKINGS, isolate, receive_as
from tests.samples import EXAMPLES, example_files, needs_public, public_files
from tests.world import World

SETS = {
    "examples": example_files("stix/*.json", "misp/*.json"),
    "public": public_files("stix/*.json", "misp/*.json"),
}
pytestmark = pytest.mark.kafka
#: (Not enisa and cert-eu, whose situation reports the console tests read.)
STIX_READER, MISP_READER = "csirts-network", "commission"
RECEIVERS = (STIX_READER, MISP_READER)
SENDER = "soc-fr"


def labels_for(item: Item) -> Labels:
    # a category both receivers' mandates cover, so TLP:AMBER items reach them too
    return Labels.of(item.tlp, categories=sorted(item.categories | {"malicious-code"}))


def assert_valid_stix(objects: list[dict[str, Any]]) -> None:
    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}
    result = stix2validator.validate_instance(
        bundle, stix2validator.ValidationOptions(version="2.1")
    )
    assert result.is_valid and not result.errors, [str(e) for e in result.errors]


def misp_as_sent(event: dict[str, Any]) -> dict[str, Any]:
    """A MISP event as a recipient gets it: the sender is its creator, no local owner."""
    out = {k: v for k, v in event.items() if k not in ("Org", "org_id", "orgc_id")}
    out["Orgc"] = sender_orgc(SENDER)
    return out


def objects_in(paths: list[Path]) -> int:
    """What the files hold: every object of each STIX bundle, one item per MISP event."""
    return sum(
        len(json.loads(p.read_text())["objects"]) if p.parent.name == "stix" else 1 for p in paths
    )


@pytest.mark.parametrize("which", ["examples", pytest.param("public", marks=needs_public)])
async def test_every_sample_comes_back_whole(which: str, world: World, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    parsed: list[tuple[Path, ParseResult]] = []
    async with Publisher(SENDER, world.ctx(SENDER)) as pub:
        for path in SETS[which]:
            # ids of their own per sample: two OASIS samples use one id for different objects
            text = isolate(path.read_text(encoding="utf-8"), run + path.name)
            kind = path.parent.name
            result = (parse_stix if kind == "stix" else parse_misp)(text, default_tlp="GREEN")
            report = await publish_parsed(
                pub, result, source=str(path), labels_for=labels_for, recipients=RECEIVERS
            )
            # every input object accounted for, and every item really published to both
            assert len(report.outcomes) == len(result.items) + len(result.skipped)
            sent = (*report.published, *report.already_sent)
            assert len(sent) == len(result.items), report.withheld
            # ... but the OASIS TLP marking definitions (the same objects in every bundle that
            # uses them, and in every run of the session) went to them once, from the first
            assert {o.source_id for o in report.already_sent} <= TLP_MARKINGS
            assert all(
                set(o.received_by) == set(RECEIVERS)
                for o in report.published
                if o.source_id not in TLP_MARKINGS
            )
            parsed.append((path, result))
            if kind == "stix":  # nothing of a STIX 2.1 sample is changed on the way in
                source = {o["id"]: o for o in json.loads(text)["objects"]}
                for item in result.items:
                    if source[item.source_id].get("spec_version") == "2.1":
                        assert object_of(item.record) == source[item.source_id]
    if which == "public":
        assert sum(len(r.items) for _, r in parsed) > 190  # 155 objects in poisonivy alone
    else:  # ours are all valid STIX 2.1 and MISP: every object is an item, none skipped
        assert sum(len(r.items) for _, r in parsed) == objects_in(SETS[which]) > 60

    await receive_as(world, STIX_READER, "stix", tmp_path / "stix")
    await receive_as(world, MISP_READER, "misp", tmp_path / "misp")
    for path, result in parsed:
        if path.parent.name == "stix":
            sent = {i.source_id: object_of(i.record) for i in result.items}
            got = {}
            for oid in sent:
                (obj,) = json.loads((tmp_path / "stix" / f"{oid}.stix.json").read_text())["objects"]
                got[oid] = obj
            assert got == sent, path.name
            assert Counter(o["type"] for o in got.values()) == Counter(i.kind for i in result.items)
            assert_valid_stix(list(got.values()))
            # ... and as one MISP event per bundle, for the MISP reader
            bundle_uuid = str(result.items[0].record["bundle_id"]).split("--", 1)[1]
            event = MISPEvent()
            event.load_file(str(tmp_path / "misp" / f"{bundle_uuid}.misp.json"))
            assert event.Orgc.name == SENDER
            assert len(event.attributes) + len(event.objects) > 0
        else:
            (item,) = result.items
            out = tmp_path / "misp" / f"{item.source_id}.misp.json"
            event = MISPEvent()
            event.load_file(str(out))  # PyMISP reads it
            assert json.loads(out.read_text())["Event"] == misp_as_sent(event_of(item.record))
            # ... and as STIX objects, for the STIX reader: the report (grouping, for an unpublished
            # event) MISP's own converter makes of it
            made = [
                json.loads(p.read_text())["objects"][0]
                for kind in ("report", "grouping")
                for p in (tmp_path / "stix").glob(f"{kind}--{item.source_id}.stix.json")
            ]
            assert len(made) == 1, item.source_id
            assert_valid_stix(made)


def jcu(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env=world.env_for(args),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_one_sample_through_the_cli(world: World, tmp_path: Path) -> None:
    sample = tmp_path / "sample.json"
    sample.write_text(
        isolate((EXAMPLES / "stix" / "heronloader-c2-with-coa.json").read_text(), uuid.uuid4().hex)
    )
    sent = jcu(
        world, "publish", "--as", SENDER, "--stix", str(sample), "--tlp", "AMBER",
        "--category", "malicious-code", "--to", ",".join(RECEIVERS), "--json",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    summary = json.loads(sent.stdout)
    parsed = parse_stix(sample.read_text(), default_tlp="AMBER")
    # (the TLP marking definitions may have reached them before: one version, one message)
    assert summary["published"] + summary["already_sent"] == len(parsed.items) > 0
    assert summary["skipped"] == len(parsed.skipped)
    assert {o["source_id"] for o in summary["objects"]} == {
        *(i.source_id for i in parsed.items),
        *(s.source_id for s in parsed.skipped),
    }
    got = jcu(
        world, "subscribe", "--as", STIX_READER, "--format", "stix", "--out",
        str(tmp_path / "stix"), "--once", "--group", world.group(STIX_READER), "--json",
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    for item in parsed.items:
        (obj,) = json.loads((tmp_path / "stix" / f"{item.source_id}.stix.json").read_text())[
            "objects"
        ]
        assert obj == object_of(item.record)
