"""The situation report counts the intelligence whatever carried it: Indicator records, STIX
objects and whole MISP events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.envelope import Labels
from broker.pep.sink import Delivery
from connectors._misp_event import record_of as misp_record
from connectors._stix_object import record_of
from connectors.sitrep.model import indicators_of, malware_families

FIXTURES = Path(__file__).parents[1] / "fixtures"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def delivery(payload_type: str, record: dict[str, Any]) -> Delivery:
    return Delivery("enisa", "m", "soc-fr", payload_type, record, Labels.of("GREEN"),
                    "jcu.civilian.indicators", 0, 0, NOW, NOW)  # fmt: skip


def test_stix_indicators_and_malware_are_counted() -> None:
    objects = json.loads((FIXTURES / "stix" / "operation-web.json").read_text())["objects"]
    found = {o["name"]: record_of(o) for o in objects if o["type"] in ("indicator", "malware")}
    assert indicators_of(delivery("StixObject", found["BlackWidow dropper"])) == [
        ("9b23bfc35b18ed80104c496b2aa722b3e56ff9ceb9dae60d1aff7230321c1d12", "file")
    ]
    compound = indicators_of(delivery("StixObject", found["C2 server"]))
    assert compound == [(json.loads(found["C2 server"]["object"])["pattern"], "stix")]
    assert malware_families(delivery("StixObject", found["BlackWidow"])) == {"BlackWidow"}


def test_a_misp_event_counts_its_ids_attributes_and_galaxy_clusters() -> None:
    event = json.loads((FIXTURES / "misp" / "blackwidow-event.json").read_text())["Event"]
    event["Tag"].append({"name": 'misp-galaxy:ransomware="BlackWidow"'})
    d = delivery("MispEvent", misp_record(event))
    found = indicators_of(d)
    assert ("203.0.113.5|8443", "ip-dst|port") in found
    assert ("Victim VPN concentrator serial 4711", "text") not in found  # to_ids false
    assert malware_families(d) == {"BlackWidow"}  # a threat actor is no malware family
