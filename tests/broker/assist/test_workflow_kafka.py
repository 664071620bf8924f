"""The assistance workflow on the real broker, each organisation on its own node: a request,
offers, an acceptance, status updates and a closure; and every refusal the issue names, both
at the sender's own node and, for a step forged past it, at the receiver's."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from broker.assist import AssistDesk, OfferDraft
from broker.audit.query import query, story
from broker.clock import utc_now
from broker.envelope import Labels
from broker.errors import ConfigError, NoMandate, NotEntitled, OutOfOrder
from broker.pep import Publisher, Subscriber
from broker.pep.control import publish_declaration, sign_declaration
from broker.pep.sink import JsonlSink
from tests.broker.assist.kafka_io import audit_records, desk, draft, forge, incident
from tests.broker.pep.kafka_io import dead_letters, produce
from tests.world import World

pytestmark = pytest.mark.kafka

IR = OfferDraft(
    kind="INCIDENT_RESPONSE", notice_hours=12, needs=("n1",), people=2, languages=("fr",)
)


async def test_request_offers_acceptance_status_and_closure_across_four_nodes(
    world: World,
) -> None:
    async with desk(world, "soc-fr") as fr:
        sent = await fr.request(draft(incident()))
    case = sent.case_id
    # Sealed for exactly the operational participants whose mandate covers it (rule 4/12):
    # no member, no supporting participant, and Europol across communities.
    assert {"cert-eu", "enisa", "csirts-network", "europol-ec3"} <= set(sent.recipients)
    assert not {"isac-energy", "isac-finance", "partner-acme", "nis-cg", "eda"} & set(
        sent.recipients
    )

    async with desk(world, "cert-eu") as ce:
        seen = ce.view(case)
        assert seen.case.state == "OPEN" and seen.case.requester == "soc-fr"
        offer1 = await ce.offer(case, IR)
    assert offer1.recipients == ("soc-fr",) and offer1.case is not None
    async with desk(world, "europol-ec3") as ec3:
        offer2 = await ec3.offer(
            case, OfferDraft(kind="MALWARE_ANALYSIS", notice_hours=48, needs=("n2",))
        )
    assert offer2.recipients == ("soc-fr",)

    async with desk(world, "soc-fr") as fr:
        view = fr.view(case[:8])  # a prefix of the request id will do
        assert view.case.state == "OFFERED"
        assert {(o.id, o.offerer) for o in view.case.offers} == {
            (offer1.message_id, "cert-eu"),
            (offer2.message_id, "europol-ec3"),
        }
        accepted = await fr.accept(case, [offer1.message_id[:8], offer2.message_id])
    assert set(accepted.recipients) == {"cert-eu", "europol-ec3"}
    assert accepted.case is not None and accepted.case.state == "ACCEPTED"

    async with desk(world, "cert-eu") as ce:
        assert ce.view(case).case.accepted_offerers == ("cert-eu", "europol-ec3")
        deployed = await ce.status(case, "DEPLOYED", "team on site at hospital A")
    assert set(deployed.recipients) == {"soc-fr", "europol-ec3"}

    async with desk(world, "europol-ec3") as ec3:
        mine = ec3.view(case).case
        assert mine.state == "DEPLOYED" and mine.deployed == {"cert-eu"}
        await ec3.status(case, "UPDATE", "sample analysed: a known loader")

    async with desk(world, "soc-fr") as fr:
        assert [u.author for u in fr.view(case).case.updates] == ["cert-eu", "europol-ec3"]
        closed = await fr.close(case, "RESOLVED", "Systems restored; two teams deployed.")
    assert closed.case is not None and closed.case.state == "CLOSED"
    # Everyone the request reached learns it is closed (no more offers), and both offerers.
    assert set(sent.recipients) | {"europol-ec3"} <= set(closed.recipients)

    for org in ("cert-eu", "europol-ec3", "enisa"):
        async with desk(world, org) as d:
            assert d.view(case).case.state == "CLOSED", org

    # The audit log tells the whole story from the thread alone: every step, every node.
    records = await audit_records(world)
    messages = story(records, case)
    ids = [m.message_id for m in messages]
    for step in (sent, offer1, offer2, accepted, deployed, closed):
        assert step.message_id in ids
    by_id = {m.message_id: m for m in messages}
    assert by_id[offer1.message_id].sender == "cert-eu"
    assert any("allowed" in s for s in by_id[offer1.message_id].decisions["soc-fr"])


async def test_an_offer_without_the_mandate_is_refused_at_both_ends_and_audited(
    world: World,
) -> None:
    """During a crisis an AMBER request reaches every operational participant (rule 10), EEAS
    among them; its mandate does not cover availability, so it may not offer."""
    inc = incident()
    declaration = sign_declaration(
        world.ctx("eu-cyclone").envelope, "eu-cyclone", inc, ("FR", "DE"), True, timedelta(days=1)
    )
    await publish_declaration(world.kafka("eu-cyclone"), inc, declaration)
    async with desk(world, "soc-fr") as fr:
        sent = await fr.request(draft(inc, categories=("availability",)))
    assert "eeas-intcen" in sent.recipients and "europol-ec3" in sent.recipients
    assert sent.case is not None and sent.case.request.crisis  # flagged
    assert set(sent.case.labels.member_states) == {"FR", "DE"}

    async with desk(world, "eeas-intcen") as eeas:
        case = eeas.view(sent.case_id).case
        with pytest.raises(NoMandate, match="mandate covers") as refused:
            await eeas.offer(sent.case_id, IR)
    assert refused.value.reason == "no-mandate"
    records = await audit_records(world)
    mine = query(records, thread=sent.case_id, enforcement_point="eeas-intcen/assist")
    assert [r.record.rejection_reason for r in mine if r.record.decision == "reject"] == [
        "no-mandate"
    ]

    # A modified node sends it anyway: the requester's node refuses it, dead-letters it.
    offer = {**_offer(sent.case_id, "eeas-intcen"), "needs": ["n1"]}
    forged = await forge(world, "eeas-intcen", case, "AssistanceOffer", offer, ("soc-fr",))
    async with AssistDesk(world.ctx("soc-fr"), "soc-fr") as fr:
        stats = await fr.sync()
        assert stats.rejected.get("no-mandate", 0) >= 1
        assert fr.view(sent.case_id).case.offers == ()  # never taken into the case
    assert "no-mandate" in await dead_letters(world, forged, "soc-fr")
    records = await audit_records(world)
    assert [
        r.record.rejection_reason
        for r in query(records, message_id=forged, enforcement_point="soc-fr/assist")
    ] == ["no-mandate"]
    assert forged in [m.message_id for m in story(records, sent.case_id)]


async def test_an_acceptance_by_anyone_but_the_requester_is_refused_and_audited(
    world: World,
) -> None:
    async with desk(world, "soc-fr") as fr:
        sent = await fr.request(draft(incident()))
    async with desk(world, "cert-eu") as ce:
        offer1 = await ce.offer(sent.case_id, IR)
    async with desk(world, "europol-ec3") as ec3:
        offer2 = await ec3.offer(sent.case_id, OfferDraft(kind="FORENSICS", notice_hours=6))
        case = ec3.view(sent.case_id).case

    # cert-eu's own node refuses to accept on soc-fr's request.
    async with desk(world, "cert-eu") as ce:
        with pytest.raises(NotEntitled, match="only soc-fr"):
            await ce.accept(sent.case_id, [offer1.message_id])

    # Forged past it, to Europol: Europol's node refuses it, Europol's offer stays open.
    acceptance = {
        "id": str(uuid.uuid4()),
        "request_id": sent.case_id,
        "accepted_by": "cert-eu",
        "accepted": utc_now(),
        "offers": [{"offer_id": offer2.message_id, "offerer": "europol-ec3"}],
        "note": "",
    }
    forged = await forge(
        world,
        "cert-eu",
        case,
        "AssistanceAcceptance",
        acceptance,
        ("europol-ec3",),
        community="law_enforcement",
    )
    async with AssistDesk(world.ctx("europol-ec3"), "europol-ec3") as ec3:
        stats = await ec3.sync()
        assert stats.rejected.get("not-entitled", 0) >= 1
        assert ec3.view(sent.case_id).case.accepted == ()
    assert "not-entitled" in await dead_letters(world, forged, "europol-ec3")
    records = await audit_records(world)
    refusals = {
        (r.enforcement_point, r.record.rejection_reason)
        for r in query(records, thread=sent.case_id, decision="reject")
    }
    assert {("cert-eu/assist", "not-entitled"), ("europol-ec3/assist", "not-entitled")} <= refusals


async def test_a_status_update_after_closure_is_refused_and_audited(world: World) -> None:
    async with desk(world, "soc-fr") as fr:
        sent = await fr.request(draft(incident()))
    async with desk(world, "cert-eu") as ce:
        offer = await ce.offer(sent.case_id, IR)
    async with desk(world, "soc-fr") as fr:
        await fr.accept(sent.case_id, [offer.message_id])
        await fr.close(sent.case_id, "NOT_NEEDED", "Contained before the team left.")

    async with desk(world, "cert-eu") as ce:
        case = ce.view(sent.case_id).case
        assert case.state == "CLOSED"
        with pytest.raises(OutOfOrder, match="closed"):
            await ce.status(sent.case_id, "DEPLOYED", "too late")

    status = {
        "id": str(uuid.uuid4()),
        "request_id": sent.case_id,
        "author": "cert-eu",
        "time": utc_now(),
        "phase": "DEPLOYED",
        "note": "on site",
    }
    forged = await forge(world, "cert-eu", case, "AssistanceStatus", status, ("soc-fr",))
    async with AssistDesk(world.ctx("soc-fr"), "soc-fr") as fr:
        stats = await fr.sync()
        assert stats.rejected.get("out-of-order", 0) >= 1
        assert fr.view(sent.case_id).case.updates == ()
    assert "out-of-order" in await dead_letters(world, forged, "soc-fr")
    records = await audit_records(world)
    refusals = {
        (r.enforcement_point, r.record.rejection_reason)
        for r in query(records, thread=sent.case_id, decision="reject")
    }
    assert {("cert-eu/assist", "out-of-order"), ("soc-fr/assist", "out-of-order")} <= refusals


async def test_a_subscriber_without_the_assistance_check_never_delivers_a_step(
    world: World, tmp_path: object
) -> None:
    """Fail closed: a channel that does not run the state machine dead-letters the steps."""
    async with desk(world, "soc-fr") as fr:
        sent = await fr.request(draft(incident()))
    from pathlib import Path

    out = Path(str(tmp_path)) / "cert-eu.jsonl"
    sub = Subscriber(
        "cert-eu",
        world.ctx("cert-eu"),
        JsonlSink(out),
        group_id=world.group("cert-eu"),
        streams=("assistance",),
        receipts=False,
    )
    async with sub:
        stats = await sub.run(until_idle=True)
    assert stats.rejected.get("unchecked-workflow", 0) >= 1
    delivered = out.read_text() if out.exists() else ""
    assert sent.message_id not in delivered
    assert "unchecked-workflow" in await dead_letters(world, sent.message_id, "cert-eu")


def _offer(case_id: str, offerer: str) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "request_id": case_id,
        "offerer": offerer,
        "offered": utc_now(),
        "needs": [],
        "capabilities": [],
        "kind": "INCIDENT_RESPONSE",
        "people": 1,
        "deployment": "EITHER",
        "notice_hours": 4,
        "available_from": None,
        "available_until": None,
        "languages": [],
        "note": "",
        "contact": None,
    }


async def test_a_step_keyed_by_anything_but_its_case_is_refused(world: World) -> None:
    """Every step of a case rides one partition because it is keyed by the case; a copy keyed
    otherwise could overtake the steps before it, and is refused."""
    async with desk(world, "soc-fr") as fr:
        sent = await fr.request(draft(incident()))
    async with desk(world, "cert-eu") as ce:
        case = ce.view(sent.case_id).case
    offer = _offer(sent.case_id, "cert-eu")
    sealed = (
        world.ctx("cert-eu")
        .envelope.sealer("cert-eu")
        .seal(
            "AssistanceOffer",
            offer,
            recipients=["soc-fr"],
            topic="jcu.civilian.assistance",
            labels=case.labels,
            message_id=str(offer["id"]),
        )
    )
    await produce(world, sealed.header.topic, sealed.data, key=sealed.message_id)
    async with AssistDesk(world.ctx("soc-fr"), "soc-fr") as fr:
        stats = await fr.sync()
        assert stats.rejected.get("malformed", 0) >= 1
        assert fr.view(sent.case_id).case.offers == ()
    assert "malformed" in await dead_letters(world, sealed.message_id, "soc-fr")


async def test_a_publisher_without_the_check_sends_no_step_and_steps_are_not_retracted(
    world: World,
) -> None:
    async with desk(world, "soc-fr") as fr:
        sent = await fr.request(draft(incident()))
    async with Publisher("cert-eu", world.ctx("cert-eu")) as plain:
        with pytest.raises(ConfigError, match="jcu assist"):
            await plain.publish(
                "AssistanceOffer",
                _offer(sent.case_id, "cert-eu"),
                labels=Labels.of("AMBER", categories=["malicious-code"]),
                recipients=["soc-fr"],
            )
    async with AssistDesk(world.ctx("soc-fr"), "soc-fr") as fr:
        assert fr._publisher is not None
        with pytest.raises(ConfigError, match="not retracted"):
            await fr._publisher.retract(sent.message_id)


async def test_an_exercise_case_stays_on_exercise_topics_among_the_enrolled(world: World) -> None:
    async with desk(world, "soc-fr") as fr:
        sent = await fr.request(draft(incident(), exercise="cyber-europe-2026"))
    assert sent.result is not None
    assert {c.topic for c in sent.result.copies} == {"jcu.exercise.civilian.assistance"}
    enrolled = {p.id for p in world.ctx("soc-fr").registry if "cyber-europe-2026" in p.exercises}
    assert set(sent.recipients) <= enrolled and "cert-eu" in sent.recipients
    async with desk(world, "cert-eu") as ce:
        offer = await ce.offer(sent.case_id, IR)
    assert offer.result is not None
    assert [c.topic for c in offer.result.copies] == ["jcu.exercise.civilian.assistance"]
    async with desk(world, "soc-fr") as fr:
        assert [o.offerer for o in fr.view(sent.case_id).case.offers] == ["cert-eu"]
