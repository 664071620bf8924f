"""What the assistance tests do on the real broker again and again: open a node's desk,
ask for help on a fresh incident, forge a step past the sender's own node."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from broker.assist import AssistDesk, Need, RequestDraft
from broker.assist.machine import Case
from broker.audit.query import decode_records
from broker.audit.record import LoggedRecord
from broker.audit.topic import read_topic
from broker.kafka.topics import AUDIT_DECISIONS, community_topic
from tests.broker.pep.kafka_io import produce
from tests.world import World


@asynccontextmanager
async def desk(world: World, org: str) -> AsyncIterator[AssistDesk]:
    """`org`'s desk on its own node, with what has arrived read in."""
    async with AssistDesk(world.ctx(org), org) as d:
        await d.sync()
        yield d


def incident() -> str:
    return f"INC-{uuid.uuid4().hex[:8]}"


def draft(
    incident_id: str, *, categories: tuple[str, ...] = ("malicious-code",), **changes: Any
) -> RequestDraft:
    """Help for hospitals hit by ransomware in France: an incident response team, forensics."""
    base: dict[str, Any] = {
        "member_states": ("FR",),
        "needs": (
            Need(
                "n1",
                "INCIDENT_RESPONSE",
                categories=categories,
                skills=("ransomware",),
                languages=("fr", "en"),
                people=2,
                deployment="ON_SITE",
                max_notice_hours=24,
            ),
            Need(
                "n2",
                "FORENSICS",
                categories=categories,
                skills=("windows", "memory"),
                languages=("en",),
            ),
        ),
        "description": "Hospitals encrypted; need an on-site team within 24 h.",
        "urgency": "IMMEDIATE",
        "tlp": "AMBER",
        "incident": incident_id,
    }
    return RequestDraft(**{**base, **changes})


async def forge(
    world: World,
    sender: str,
    case: Case,
    payload_type: str,
    record: dict[str, Any],
    to: tuple[str, ...],
    community: str = "civilian",
) -> str:
    """Seal a step as `sender` with its own key, but past its own node's checks (as a modified
    node would), and put it on the assistance topic keyed by the case; its message id."""
    sealed = (
        world.ctx(sender)
        .envelope.sealer(sender)
        .seal(
            payload_type,
            record,
            recipients=to,
            topic=community_topic(community, "assistance"),
            labels=case.labels,
            message_id=str(record["id"]),
        )
    )
    await produce(world, sealed.header.topic, sealed.data, key=case.id)
    return sealed.message_id


async def audit_records(world: World) -> list[LoggedRecord]:
    """Every record of the audit log, as an auditor given every node's audit keys reads it."""
    records, _ = decode_records(
        world.ctx("enisa").envelope.store,
        await read_topic(world.auditor, AUDIT_DECISIONS),
        world.audit_keys(),
    )
    return records
