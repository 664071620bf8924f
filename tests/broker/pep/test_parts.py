"""Parts of a record stricter than the record, and restrictions the caller imposes: each
recipient gets the variant it is cleared for, labelled and audited as such."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from broker.envelope import Labels
from broker.errors import ConfigError
from broker.pep import Part, Publication, Publisher, Restriction
from tests.broker.pep.kafka_io import drain, jcu
from tests.broker.pep.records import incident_report
from tests.world import World

pytestmark = pytest.mark.kafka

#: enisa's mandate covers intrusion-attempts, isac-finance's does not: at AMBER only enisa
#: is cleared; both are cleared for GREEN.
LABELS = Labels.of("GREEN", categories=["intrusion-attempts"])
NAMED = ("enisa", "isac-finance")


def stix_record(secret: str) -> dict[str, Any]:
    obj = {
        "type": "x-test-note",
        "spec_version": "2.1",
        "id": f"x-test-note--{uuid.uuid4()}",
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "x_text": "shared",
        "x_secret": secret,
    }
    return {"id": obj["id"], "type": obj["type"], "object": json.dumps(obj, sort_keys=True)}


def without(record: Mapping[str, Any], parts: frozenset[str]) -> dict[str, Any]:
    obj = {k: v for k, v in json.loads(record["object"]).items() if k not in parts}
    return {**record, "object": json.dumps(obj, sort_keys=True)}


def test_a_part_needs_a_redactor(world: World) -> None:
    pub = Publisher("soc-fr", world.ctx("soc-fr"))
    with pytest.raises(ConfigError, match="withholds parts needs a redactor"):
        pub.reach(
            [
                Publication(
                    "StixObject",
                    stix_record("x"),
                    LABELS,
                    NAMED,
                    parts=(Part("x_secret", "AMBER"),),
                )
            ]
        )


async def test_a_recipient_not_cleared_for_a_part_gets_the_record_without_it(
    world: World, tmp_path: Path
) -> None:
    item = Publication(
        "StixObject",
        stix_record("the victim's name"),
        LABELS,
        NAMED,
        parts=(Part("x_secret", "AMBER"),),
        redactor=without,
    )
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        (reach,) = pub.reach([item])
        (sent,) = await pub.publish_many([item])
    assert reach.recipients == NAMED
    assert dict(reach.withheld) == {"isac-finance": ("x_secret",)}
    finance = next(d for d in sent.decisions if d.org == "isac-finance")
    assert (finance.decision, finance.redact_fields) == ("redact", ("x_secret",))
    assert "part-marking-not-cleared" in finance.rules
    assert any("x_secret is marked TLP:AMBER" in r for r in finance.reasons)
    copies = {c.recipients: c for c in sent.copies}
    assert copies[("enisa",)].redacted_fields == ()
    assert copies[("isac-finance",)].redacted_fields == ("x_secret",)

    for org, secret, tlp, removed in (
        ("enisa", "the victim's name", "AMBER", []),  # the whole record: as strict as its part
        ("isac-finance", None, "GREEN", ["x_secret"]),
    ):
        _, lines = await drain(world, org, tmp_path / org)
        (got,) = [x for x in lines if x["message_id"] == sent.message_id]
        assert json.loads(got["record"]["object"]).get("x_secret") == secret
        assert got["labels"]["tlp"] == tlp
        assert got["labels"]["redacted_fields"] == removed
        assert got["redacted_fields"] == removed

    # soc-fr's log, read by an auditor with soc-fr's home (its audit keys)
    out = await jcu(
        world, "audit", "query", "--message", sent.message_id, "--json", "--as", "soc-fr"
    )
    assert out.returncode == 0, out.stderr
    audited = {r["organisation"]: r for r in json.loads(out.stdout) if r["action"] == "publish"}
    assert audited["isac-finance"]["decision"] == "redact"
    assert audited["isac-finance"]["redacted_fields"] == ["x_secret"]
    assert "part-marking-not-cleared" in audited["isac-finance"]["rule_ids"]
    assert audited["enisa"]["decision"] == "allow"


async def test_restrictions_narrow_what_the_policy_allowed_and_are_audited(
    world: World, tmp_path: Path
) -> None:
    item = Publication(
        "StixObject",
        stix_record("internal"),
        LABELS,
        NAMED,
        restrict={
            "enisa": (Restriction("test-trim", "enisa must not see x_secret", ("x_secret",)),),
            "isac-finance": (Restriction("test-withhold", "not for isac-finance"),),
            "cert-eu": (Restriction("test-withhold", "the policy denies it anyway"),),
        },
        redactor=without,
    )
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        (sent,) = await pub.publish_many([item])
    decisions = {d.org: d for d in sent.decisions}
    assert sent.recipients == ("enisa",)
    assert decisions["isac-finance"].decision == "deny"
    assert decisions["isac-finance"].rules == ("test-withhold",)
    assert decisions["isac-finance"].reasons == ("not for isac-finance",)
    assert decisions["cert-eu"].rules[0] == "named-recipients-only"  # the policy's, first
    assert decisions["enisa"].decision == "redact" and "test-trim" in decisions["enisa"].rules
    _, lines = await drain(world, "enisa", tmp_path)
    (got,) = [x for x in lines if x["message_id"] == sent.message_id]
    assert "x_secret" not in json.loads(got["record"]["object"])


async def test_personal_data_and_parts_are_removed_together(world: World, tmp_path: Path) -> None:
    """An incident report with personal data to a diplomatic recipient, and a stricter part:
    one variant per combination, each labelled with everything removed from it."""
    record = incident_report(True)

    def drop_description(rec: Mapping[str, Any], parts: frozenset[str]) -> dict[str, Any]:
        return {**rec, "description": ""} if "description" in parts else dict(rec)

    item = Publication(
        "IncidentReport",
        record,
        Labels.of("GREEN", categories=["intrusions"]),
        ("enisa", "eeas-intcen"),
        parts=(Part("description", "AMBER+STRICT"),),
        redactor=drop_description,
    )
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        (sent,) = await pub.publish_many([item])
    by_org = {r: c for c in sent.copies for r in c.recipients}
    assert by_org["enisa"].redacted_fields == ()
    assert by_org["eeas-intcen"].redacted_fields == (
        "affected_persons",
        "description",
        "reporter",
    )
    _, lines = await drain(world, "eeas-intcen", tmp_path)
    (got,) = [x for x in lines if x["message_id"] == sent.message_id]
    assert got["record"]["description"] == "" and got["record"]["reporter"] is None
    assert got["labels"]["personal_data"] is False
