"""A small crisis on the session's federation: what the console and sitrep tests look at.

soc-fr shares indicators (one RED indicator, many times, to two named organisations), cert-eu an
AMBER incident report with personal data for an incident of its own, eu-cyclone
declares a crisis for it (and one for another incident, which csirts-network
ends), eda an AMBER situation report for pesco alone (on the defence topics
only), enisa a CLEAR situation report; enisa and eeas-intcen receive (consumer
groups of this module alone), so receipts and receive decisions exist.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from broker.envelope import Labels
from broker.pep import JsonlSink, Publication, Publisher, PublishResult, Subscriber
from broker.pep.control import publish_declaration, sign_declaration
from tests.broker.pep.records import incident_report, indicator, situation_report
from tests.world import World

#: More sightings of the CLEAR indicator than any value other tests share repeatedly.
SIGHTINGS = 24


@dataclass
class Traffic:
    incident: str
    #: a crisis eu-cyclone declared and csirts-network ended (`jcu crisis declare|end`)
    ended: str = ""
    #: name -> the publication's result
    sent: dict[str, PublishResult] = field(default_factory=dict)
    #: indicator values: one everybody civilian may see, one only the named two may
    clear_value: str = ""
    red_value: str = ""

    def mid(self, name: str) -> str:
        return self.sent[name].message_id


async def make_traffic(world: World, out: Path) -> Traffic:
    t = Traffic(incident=f"INC-CONSOLE-{uuid.uuid4().hex[:6]}")
    t.clear_value = f"203.0.113.{uuid.uuid4().int % 200 + 1}"
    t.red_value = f"red-{uuid.uuid4().hex[:10]}.example"
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        t.sent["clear"] = await pub.publish(
            "Indicator",
            indicator(t.clear_value),
            labels=Labels.of("CLEAR", categories=["malicious-code"], member_states=["FR"]),
        )
        # Seen again and again, so it is among a situation report's top ten indicators
        # whatever other tests shared earlier in the session (test_exactly_once shares 50
        # values three times each with enisa).
        await pub.publish_many(
            [
                Publication(
                    "Indicator",
                    indicator(t.clear_value),
                    Labels.of("CLEAR", categories=["malicious-code"], member_states=["FR"]),
                )
                for _ in range(SIGHTINGS)
            ]
        )
        red = indicator()
        red.update(observable_type="domain-name", value=t.red_value, pattern=None)
        # Also seen again and again, for the same reason (other tests share single values
        # with cert-eu, e.g. the audit's guess attack a /16 of them).
        red_copies = [
            Publication(
                "Indicator",
                red,
                Labels.of("RED", categories=["intrusions"]),
                recipients=("cert-eu", "isac-energy"),
            )
            for _ in range(SIGHTINGS + 1)
        ]
        *_, t.sent["red"] = await pub.publish_many(red_copies)
    async with Publisher("cert-eu", world.ctx("cert-eu")) as pub:
        t.sent["incident"] = await pub.publish(
            "IncidentReport",
            incident_report(True),
            labels=Labels.of(
                "AMBER",
                categories=["malicious-code"],
                personal_data=True,
                incident=t.incident,
                member_states=["FR", "DE"],
            ),
        )
    node = world.ctx("eu-cyclone")
    data = sign_declaration(node.envelope, "eu-cyclone", t.incident, ("DE", "FR"), True)
    await publish_declaration(world.kafka("eu-cyclone"), t.incident, data)
    t.ended = f"INC-CONSOLE-ENDED-{uuid.uuid4().hex[:6]}"
    for org, act, *extra in (
        ("eu-cyclone", "declare", "--member-states", "FR,DE", "--days", "1"),
        ("csirts-network", "end"),
    ):
        argv = [sys.executable, "-m", "broker.cli", "crisis", act, "--incident", t.ended, *extra]
        await asyncio.to_thread(
            subprocess.run, argv, env=world.env(org), check=True, capture_output=True
        )
    # defence only (eda to pesco): on no topic enisa's node reads
    async with Publisher("eda", world.ctx("eda")) as pub:
        t.sent["defence"] = await pub.publish(
            "SituationReport",
            situation_report(),
            labels=Labels.of("AMBER", categories=["capability"]),
        )
    async with Publisher("enisa", world.ctx("enisa")) as pub:
        t.sent["sitrep"] = await pub.publish(
            "SituationReport", situation_report(), labels=Labels.of("CLEAR", incident=t.incident)
        )
    for org in ("enisa", "eeas-intcen"):
        sink = JsonlSink(out / f"{org}.jsonl")
        async with Subscriber(org, world.ctx(org), sink, group_id=world.group(org)) as sub:
            await sub.run(until_idle=True)
    return t
