"""Publish and subscribe on the real broker: who receives equals what the policy says."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.clock import to_millis, utc_now
from broker.envelope import Labels, read_header
from broker.errors import KeystoreError, MalformedRecord, NotARecipient
from broker.kafka.scan import scan
from broker.pep import JsonlSink, Publication, Publisher, PublishResult, Subscriber
from broker.pep.publisher import NO_USABLE_KEY, policy_message
from tests.broker.pep.conftest import World
from tests.broker.pep.records import incident_report, indicator, situation_report

pytestmark = pytest.mark.kafka

# (sender, payload type, record factory, labels, named recipients)
CASES: list[tuple[str, str, Any, Labels, tuple[str, ...]]] = [
    ("soc-fr", "Indicator", indicator, Labels.of("CLEAR"), ()),
    ("soc-fr", "Indicator", indicator, Labels.of("GREEN"), ()),
    ("cert-eu", "Indicator", indicator, Labels.of("AMBER", categories=["malicious-code"]), ()),
    ("cert-eu", "Indicator", indicator, Labels.of("AMBER+STRICT", categories=["intrusions"]), ()),
    ("soc-fr", "Indicator", indicator, Labels.of("RED"), ("enisa", "isac-energy")),
    (
        "cert-eu",
        "IncidentReport",
        incident_report,
        Labels.of("AMBER", categories=["malicious-code"], personal_data=True),
        (),
    ),
    (
        "europol-ec3",
        "IncidentReport",
        lambda: incident_report(False),
        Labels.of("AMBER", categories=["fraud"], handling_codes=["H2"]),
        ("cert-eu",),
    ),
    ("europol-ec3", "Indicator", indicator, Labels.of("GREEN", handling_codes=["H3"]), ()),
    ("enisa", "SituationReport", situation_report, Labels.of("GREEN"), ()),
]


async def _receive_all(world: World, participant: str, out: Path) -> dict[str, dict[str, Any]]:
    sink = JsonlSink(out / f"{participant}.jsonl")
    sub = Subscriber(
        participant, world.ctx(participant), sink, group_id=world.group(participant), receipts=False
    )
    async with sub:
        await sub.run(until_idle=True)
    got: dict[str, dict[str, Any]] = {}
    path = out / f"{participant}.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            obj = json.loads(line)
            got[obj["message_id"]] = obj
    return got


async def test_receivers_equal_policy_explain_and_nobody_else_can_decrypt(
    world: World, tmp_path: Path
) -> None:
    results: list[PublishResult] = []
    expected: dict[str, dict[str, str]] = {}  # message id -> org -> allow/redact
    for sender, ptype, make, labels, named in CASES:
        async with Publisher(sender, world.ctx(sender)) as pub:
            res = await pub.publish(ptype, make(), labels=labels, recipients=named)
        results.append(res)
        # What `jcu policy explain` computes: the engine's decision for every organisation.
        msg = policy_message(sender, ptype, labels, named)
        decisions = world.ctx(sender).policy.decide_all(msg)
        expected[res.message_id] = {d.org: d.decision for d in decisions if d.allowed}
        assert set(res.recipients) == set(expected[res.message_id]), (sender, labels)

    received: dict[str, dict[str, str]] = defaultdict(dict)
    for org in world.orgs:
        got = await _receive_all(world, org, tmp_path)
        for res in results:
            if res.message_id in got:
                received[res.message_id][org] = (
                    "redact" if got[res.message_id]["redacted_fields"] else "allow"
                )
    for res in results:
        assert received[res.message_id] == expected[res.message_id], res.labels

    # The personal-data report reached the diplomatic side? No: check a redacted copy exists
    # where the policy said redact, and that its personal-data fields are gone.
    pd = results[5]
    redacted = [o for o, d in expected[pd.message_id].items() if d == "redact"]
    assert redacted, "the sample policy must redact the personal-data report for someone"
    body = json.loads(
        next(
            line
            for line in (tmp_path / f"{redacted[0]}.jsonl").read_text().splitlines()
            if pd.message_id in line
        )
    )
    assert body["record"]["reporter"] is None and body["record"]["affected_persons"] == []
    assert body["labels"]["personal_data"] is False

    # Every envelope on every topic: a non-recipient cannot open it.
    ids = {r.message_id for r in results}
    topics = sorted({c.topic for r in results for c in r.copies})
    checked = 0
    async for rec in scan(world.admin, topics):  # a reader outside every community
        try:
            header = read_header(world.ctx("enisa").envelope.store, rec.value)
        except MalformedRecord:
            continue  # another test's deliberately broken record
        if header.message_id not in ids:
            continue
        outsiders = set(world.orgs) - set(header.recipient_ids)
        for org in sorted(outsiders)[:4]:
            with pytest.raises(NotARecipient):
                world.ctx(org).envelope.opener(org).open(rec.value, topic=rec.topic)
            checked += 1
    assert checked > 0


async def test_a_mixed_batch_gets_each_items_own_decisions(world: World) -> None:
    """`publish_many` decides each (type, labels, recipients) once per batch: items that
    share them share decisions, and no item gets another's."""
    mixed: list[tuple[str, Any, Labels, tuple[str, ...]]] = [
        ("Indicator", indicator, Labels.of("GREEN"), ()),
        ("Indicator", indicator, Labels.of("RED"), ("enisa",)),
        ("Indicator", indicator, Labels.of("GREEN"), ()),  # same as the first
        ("Indicator", indicator, Labels.of("RED"), ("enisa", "isac-energy")),  # other names
        ("Indicator", indicator, Labels.of("AMBER", categories=["malicious-code"]), ()),
        ("SituationReport", situation_report, Labels.of("GREEN"), ()),  # other type
        ("Indicator", indicator, Labels.of("RED"), ("enisa",)),  # same as the second
    ]
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        results = await pub.publish_many(
            [Publication(ptype, make(), labels, named) for ptype, make, labels, named in mixed]
        )
    assert len({r.message_id for r in results}) == len(mixed)
    for (ptype, _, labels, named), res in zip(mixed, results, strict=True):
        alone = world.ctx("cert-eu").policy.decide_all(
            policy_message("cert-eu", ptype, labels, named)
        )
        assert res.decisions == tuple(alone), (ptype, labels, named)
        assert set(res.recipients) == {d.org for d in alone if d.allowed}, (labels, named)
    # The batch really differed: RED to enisa alone vs RED to enisa and the energy ISAC.
    assert set(results[1].recipients) == {"enisa"}
    assert set(results[3].recipients) == {"enisa", "isac-energy"}
    assert len(results[0].recipients) > len(results[1].recipients)


async def test_a_recipient_without_a_usable_key_is_denied_and_the_others_still_get_it(
    world: World,
) -> None:
    """Revoking an organisation's keys must not stop sharing with everyone else: the
    publisher denies it by `no-usable-key`, says so in the result, and audits that."""
    ctx = world.fresh_ctx("cert-eu")  # its own keyring: the session's stays intact
    entry = ctx.envelope.keyring.entry("isac-energy")
    gone = to_millis(utc_now() - timedelta(minutes=1))
    keys = tuple(
        dataclasses.replace(k, revoked=gone) if k.purpose == "kem" else k for k in entry.keys
    )
    assert ctx.envelope.keyring.update(entry.with_changes(issued=utc_now(), keys=keys))
    audit = ctx.audit_log("cert-eu", "publish")
    async with Publisher("cert-eu", ctx, audit=audit) as pub:
        before = audit.size
        named, everyone = await pub.publish_many(
            [
                Publication("Indicator", indicator(), Labels.of("RED"), ("enisa", "isac-energy")),
                Publication("Indicator", indicator(), Labels.of("GREEN"), ()),
            ]
        )
        assert audit.size == before + 4  # per message: its decisions, then what was sent
    assert named.recipients == ("enisa",)
    for result in (named, everyone):
        assert "isac-energy" not in result.recipients
        (denial,) = [d for d in result.denied if d.org == "isac-energy"]
        assert denial.rules == (NO_USABLE_KEY,)
        assert "no usable key" in denial.reasons[0]
    # Everyone else the policy allows still gets the GREEN one.
    allowed = world.ctx("cert-eu").policy.decide_all(
        policy_message("cert-eu", "Indicator", Labels.of("GREEN"), ())
    )
    assert set(everyone.recipients) == {d.org for d in allowed if d.allowed} - {"isac-energy"}


async def test_a_batch_the_sealer_refuses_is_neither_sent_nor_recorded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sealing comes before the audit write: a batch that cannot be sealed leaves no
    decisions in the log for messages never sent, and the publisher carries on."""
    audit = world.ctx("cert-eu").audit_log("cert-eu", "publish")
    async with Publisher("cert-eu", world.ctx("cert-eu"), audit=audit) as pub:
        item = Publication("Indicator", indicator(), Labels.of("RED"), ("enisa",))
        before = audit.size

        def refuse(requests: object) -> None:
            raise KeystoreError("the keystore cannot be read")

        with monkeypatch.context() as patch:
            patch.setattr(pub._sealer, "seal_many", refuse)
            with pytest.raises(KeystoreError, match="cannot be read"):
                await pub.publish_many([item, item])
        assert audit.size == before
        sent = await pub.publish_many([item])
        assert sent[0].recipients == ("enisa",)
        assert audit.size == before + 2  # its decisions, then what was sent
