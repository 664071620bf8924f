"""Every shared sample: SOC connector -> Kafka (real broker) -> ISAC connector, unchanged.

Published as soc-fr with a default TLP, received as enisa (STIX files) and
cert-eu (MISP files): the indicators that come out have the ids, patterns and
TLP that went in; the STIX validates, PyMISP loads the MISP.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import stix2validator
from pymisp import MISPEvent

from broker.envelope import Labels
from broker.pep import Publisher, Subscriber
from connectors import tlp
from connectors.isac import indicator_stix_id
from connectors.isac._misp import misp_attribute_of
from connectors.isac.subscriber import FormatSink
from connectors.soc import Item, parse_file
from connectors.soc.publishing import PublishReport, publish_parsed
from tests.world import World

pytestmark = pytest.mark.kafka

SAMPLES = Path("/work/shared/fixtures")
SAMPLE_FILES = sorted(SAMPLES.glob("stix/*.json")) + sorted(SAMPLES.glob("misp/*.json"))
CLI_SAMPLE = SAMPLES / "stix" / "indicators-for-C2-with-COA.json"
RECEIVERS = ("enisa", "cert-eu")


def labels_for(item: Item) -> Labels:
    # a category both receivers' mandates cover, so TLP:AMBER items reach them too
    return Labels.of(item.tlp, categories=sorted(item.categories | {"malicious-code"}))


def assert_valid_stix(bundle: dict[str, Any]) -> None:
    result = stix2validator.validate_instance(
        bundle, stix2validator.ValidationOptions(version="2.1")
    )
    assert result.is_valid and not result.errors, [str(e) for e in result.errors]


def check_stix(path: Path, item: Item) -> None:
    bundle = json.loads(path.read_text())
    assert_valid_stix(bundle)
    if item.payload_type != "Indicator":
        return
    out = {o["id"]: o for o in bundle["objects"]}
    got = out[indicator_stix_id(item.record)]
    assert got["pattern"] == item.record["pattern"]
    assert got["object_marking_refs"] == [tlp.stix_marking_id(item.tlp)]


def check_misp(path: Path, item: Item) -> None:
    event = MISPEvent()
    event.load_file(str(path))
    assert tlp.misp_tag(item.tlp) in {t.name for t in event.tags}
    if item.payload_type != "Indicator":
        assert [r.uuid for r in event.event_reports] == [str(item.record["id"])]
        return
    (attribute,) = event.attributes
    assert attribute.uuid == str(item.record["id"])
    assert (attribute.type, attribute.value) == misp_attribute_of(item.record)
    assert tlp.misp_tag(item.tlp) in {t.name for t in attribute.tags}


async def receive(world: World, participant: str, fmt: str, out: Path) -> None:
    sink = FormatSink(fmt, out)  # type: ignore[arg-type]
    sub = Subscriber(
        participant, world.ctx(participant), sink, group_id=world.group(participant), receipts=False
    )
    async with sub:
        await sub.run(until_idle=True)


async def test_every_sample_goes_through_unchanged(world: World, tmp_path: Path) -> None:
    reports: list[tuple[PublishReport, dict[str, Item]]] = []
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        for path in SAMPLE_FILES:
            parsed = parse_file(path, default_tlp="GREEN")
            report = await publish_parsed(
                pub, parsed, source=str(path), labels_for=labels_for, recipients=RECEIVERS
            )
            # every input object accounted for, and every item really published
            assert len(report.outcomes) == len(parsed.items) + len(parsed.skipped)
            assert len(report.published) == len(parsed.items), report.skipped
            by_source = {i.source_id: i for i in parsed.items}
            reports.append(
                (report, {o.message_id or "": by_source[o.source_id] for o in report.published})
            )
    assert sum(len(r.published) for r, _ in reports) > 20  # the samples do hold indicators

    await receive(world, "enisa", "stix", tmp_path / "stix")
    await receive(world, "cert-eu", "misp", tmp_path / "misp")
    for report, items in reports:
        for outcome in report.published:
            assert outcome.recipients == len(RECEIVERS)
            item = items[outcome.message_id or ""]
            check_stix(tmp_path / "stix" / f"{outcome.message_id}.stix.json", item)
            check_misp(tmp_path / "misp" / f"{outcome.message_id}.misp.json", item)


def jcu(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env=world.env_for(args),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_one_sample_through_the_cli(world: World, tmp_path: Path) -> None:
    sent = jcu(
        world, "publish", "--as", "soc-fr", "--stix", str(CLI_SAMPLE), "--tlp", "AMBER",
        "--category", "malicious-code", "--to", ",".join(RECEIVERS), "--json",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    summary = json.loads(sent.stdout)
    parsed = parse_file(CLI_SAMPLE, default_tlp="AMBER")
    assert summary["published"] == len(parsed.items) > 0
    assert summary["skipped"] == len(parsed.skipped)
    assert {o["source_id"] for o in summary["objects"]} == {
        *(i.source_id for i in parsed.items),
        *(s.source_id for s in parsed.skipped),
    }
    by_source = {i.source_id: i for i in parsed.items}
    published = [o for o in summary["objects"] if o["status"] == "published"]

    for participant, fmt in (("enisa", "stix"), ("cert-eu", "misp")):
        got = jcu(
            world, "subscribe", "--as", participant, "--format", fmt, "--out",
            str(tmp_path / fmt), "--once", "--group", world.group(participant), "--json",
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["delivered"] >= len(published)
    for o in published:
        item = by_source[o["source_id"]]
        check_stix(tmp_path / "stix" / f"{o['message_id']}.stix.json", item)
        check_misp(tmp_path / "misp" / f"{o['message_id']}.misp.json", item)
