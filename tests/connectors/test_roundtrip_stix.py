"""STIX round trip on the real broker: a threat report comes back whole, minus what is withheld.

The fixture (tests/connectors/fixtures/stix/operation-web.json) is a report with
malware, a threat actor (TLP:AMBER), attack patterns, a tool, a campaign,
indicators, relationships, sightings, observed data with its observable, a
custom `x-` object, a statement marking, and granular markings of two TLPs:
AMBER+STRICT on descriptions, AMBER on one external reference. Its version 1
(operation-web-v1.json) holds older versions of two of the objects and is
published after version 2.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import stix2validator

from connectors.taxii import ScryptCost, TaxiiStore, TaxiiUsers, collection_id_for, create_app
from connectors.taxii.store import store_path
from tests.connectors.roundtrip import (
    EVERYTHING,
    GREEN_ONLY,
    NO_STRICT,
    RECIPIENTS,
    SENDER,
    TLP_MARKINGS,
    fixture,
    publish,
    receive_as,
    stix_files,
)
from tests.world import World

pytestmark = pytest.mark.kafka

AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"


def _by_type(objects: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects.values() if o["type"] == kind]


def _named(objects: dict[str, dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in _by_type(objects, kind) if o.get("name") == name]
    return found


def _without_marked(obj: dict[str, Any], marking: str) -> dict[str, Any]:
    """`obj` as a recipient not cleared for `marking` must get it: every property a
    granular marking of it selects removed, and those markings gone (selectors that
    name list elements are handled by the callers)."""
    out = copy.deepcopy(obj)
    kept = []
    for gm in out.get("granular_markings", []):
        if gm["marking_ref"] == marking:
            for selector in gm["selectors"]:
                assert "." not in selector, "top-level selectors only here"
                out.pop(selector, None)
        else:
            kept.append(gm)
    if kept:
        out["granular_markings"] = kept
    else:
        out.pop("granular_markings", None)
    return out


def expected(source: dict[str, dict[str, Any]], recipient: str) -> dict[str, dict[str, Any]]:
    """What each recipient must get, worked out from the fixture by hand."""
    want = copy.deepcopy(source)
    if recipient == EVERYTHING:
        return want
    c2 = _named(want, "indicator", "C2 server")
    report = _by_type(want, "report")[0]
    want[c2["id"]] = _without_marked(c2, STRICT)
    want[report["id"]] = _without_marked(report, STRICT)
    if recipient == NO_STRICT:
        return want
    # GREEN only: the AMBER threat actor, and what cannot stand without it, are withheld
    actor = _named(want, "threat-actor", "Spider Group")
    dangling = {actor["id"]} | {
        o["id"]
        for o in want.values()
        if actor["id"] in (o.get("source_ref"), o.get("target_ref"), o.get("sighting_of_ref"))
    }
    assert len(dangling) == 4  # the actor, two relationships, a sighting
    for oid in dangling:
        del want[oid]
    report = want[report["id"]]
    report["object_refs"] = [r for r in report["object_refs"] if r not in dangling]
    del report["external_references"][1]  # marked AMBER
    report["granular_markings"] = [
        gm for gm in report["granular_markings"] if gm["marking_ref"] != AMBER
    ]
    return want


def _validate(objects: list[dict[str, Any]]) -> None:
    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}
    result = stix2validator.validate_instance(
        bundle, stix2validator.ValidationOptions(version="2.1")
    )
    assert result.is_valid and not result.errors, [str(e) for e in result.errors]


async def test_a_threat_report_comes_back_whole_minus_exactly_what_is_withheld(
    world: World, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex
    text = fixture("stix/operation-web.json", run)
    source = {o["id"]: o for o in json.loads(text)["objects"]}
    report = await publish(world, text, fmt="stix")
    assert report.skipped == () and report.withheld == ()
    # the OASIS TLP marking definitions (the same objects in every run of the session) went
    # to these recipients in an earlier run: one object version is one message, sent once
    assert {o.source_id for o in report.already_sent} <= TLP_MARKINGS
    assert len(report.published) + len(report.already_sent) == len(source)
    # the older version, published after the newer one
    older = fixture("stix/operation-web-v1.json", run)
    late = await publish(world, older, fmt="stix")
    unchanged = {  # the same version in both files: sent once, with the newer file
        o["id"]
        for o in json.loads(older)["objects"]
        if o["id"] in source and o.get("modified") == source[o["id"]].get("modified")
    }
    assert {o.source_id for o in late.already_sent} <= TLP_MARKINGS | unchanged
    assert len(late.published) + len(late.already_sent) == len(json.loads(older)["objects"])

    for recipient in RECIPIENTS:
        out = tmp_path / recipient
        await receive_as(world, recipient, "stix", out)
        got = stix_files(out, source)
        want = expected(source, recipient)
        assert Counter(o["type"] for o in got.values()) == Counter(
            o["type"] for o in want.values()
        ), recipient
        assert set(got) == set(want), recipient
        for oid, obj in want.items():
            assert got[oid] == obj, (recipient, oid)  # every property, the newest version
        _validate(list(got.values()))


async def test_what_is_withheld_is_said_per_object_and_in_the_audit_log(
    world: World, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex
    text = fixture("stix/operation-web.json", run)
    source = {o["id"]: o for o in json.loads(text)["objects"]}
    report = await publish(world, text, fmt="stix")
    outcomes = {o.source_id: o for o in report.outcomes}
    actor = _named(source, "threat-actor", "Spider Group")
    uses = next(o for o in source.values() if o.get("source_ref") == actor["id"])
    c2 = _named(source, "indicator", "C2 server")
    rep = _by_type(source, "report")[0]

    # the publisher's report: per object, who did not get it and by which rule
    denied = {d.org: d for d in outcomes[uses["id"]].denied}
    assert denied[GREEN_ONLY].rules == ("graph-reference-not-received",)
    assert actor["id"] in denied[GREEN_ONLY].reasons[0]
    assert set(outcomes[uses["id"]].received_by) == {EVERYTHING, NO_STRICT}
    assert outcomes[c2["id"]].redacted == {
        NO_STRICT: ("description",),
        GREEN_ONLY: ("description",),
    }
    trimmed = set(outcomes[rep["id"]].redacted[GREEN_ONLY])
    assert {"description", "external_references.[1]"} <= trimmed
    assert sum(p.startswith("object_refs.") for p in trimmed) == 4

    # the audit log of soc-fr says the same
    for message, org, verdict, rule in (
        (outcomes[uses["id"]].message_id, GREEN_ONLY, "denied", "graph-reference-not-received"),
        (outcomes[rep["id"]].message_id, GREEN_ONLY, "allowed redacted", "graph-reference-trimmed"),
        (outcomes[c2["id"]].message_id, NO_STRICT, "allowed redacted", "part-marking-not-cleared"),
    ):
        assert message is not None
        explained = subprocess.run(
            [sys.executable, "-m", "broker.cli", "audit", "explain", message, "--json"],
            env=world.auditor_env(SENDER),  # its home's keys; only auditors read the topics
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert explained.returncode == 0, explained.stderr
        # the decision, not the send outcome that follows it in the same log
        (said,) = [s for s in json.loads(explained.stdout)[org] if "[publish at" in s]
        assert said.startswith(verdict) and rule in said, said


async def test_taxii_serves_the_newest_version_whatever_the_arrival_order(
    world: World, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex
    newer, older = (
        fixture("stix/operation-web.json", run),
        fixture("stix/operation-web-v1.json", run),
    )
    await publish(world, newer, fmt="stix", recipients=(EVERYTHING,))
    await publish(world, older, fmt="stix", recipients=(EVERYTHING,))
    await receive_as(world, EVERYTHING, "taxii", tmp_path / "other")

    source = {o["id"]: o for o in json.loads(newer)["objects"]}
    malware = _by_type(source, "malware")[0]
    v1 = next(o for o in json.loads(older)["objects"] if o["id"] == malware["id"])
    assert v1["modified"] < malware["modified"]

    store = TaxiiStore(store_path(world.settings(EVERYTHING).home, EVERYTHING), EVERYTHING)
    users = TaxiiUsers(tmp_path / "taxii-users.json", cost=ScryptCost(n=2**12))
    users.set_password(EVERYTHING, "a taxii test passphrase")
    await store.start()
    try:
        transport = httpx.ASGITransport(app=create_app(store, EVERYTHING, users))
        auth = (EVERYTHING, "a taxii test passphrase")
        headers = {"Accept": "application/taxii+json;version=2.1"}
        base = f"/{EVERYTHING}/collections/{collection_id_for('jcu.civilian.indicators')}"
        async with httpx.AsyncClient(
            transport=transport, base_url="http://taxii.test", auth=auth, headers=headers
        ) as client:
            latest = await client.get(f"{base}/objects/{malware['id']}/")
            assert latest.status_code == 200, latest.text
            assert latest.json()["objects"] == [malware]
            versions = await client.get(f"{base}/objects/{malware['id']}/versions/")
            assert versions.json()["versions"] == [v1["modified"], malware["modified"]]
            first = await client.get(
                f"{base}/objects/?match[id]={malware['id']}&match[version]=first"
            )
            assert first.json()["objects"] == [v1]
    finally:
        await store.stop()
