"""A node's assistance desk: send the steps of assistance cases, read what arrived.

`AssistDesk` puts together, for the node's own participant, its case book, a
publisher and a subscriber on its community's assistance stream (its own
consumer group, `<participant>.assist`), both with the assistance
workflow's check and one audit log, `<participant>/assist`. Every step it
sends is a typed record (schemas/Assistance*.avsc) published through the
publisher: decided per organisation by the policy, sealed for exactly the
parties, audited, keyed by its case. `sync()` reads what has arrived, each
record through the subscriber's checks, into the case book.

    async with AssistDesk(ctx, "soc-fr") as desk:
        await desk.sync()
        sent = await desk.request(RequestDraft(member_states=("FR",), needs=(...), ...))
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker.assist.book import CaseBook, CaseView
from broker.assist.check import assist_workflows
from broker.assist.machine import Case, recipients_for
from broker.assist.steps import (
    Acceptance,
    Closure,
    Contact,
    Need,
    Offer,
    Request,
    StatusUpdate,
    Step,
)
from broker.audit import AuditLog
from broker.clock import Clock, utc_now
from broker.envelope import Labels
from broker.errors import ConfigError
from broker.lifecycle import Service, to_the_end
from broker.pep import Publisher, PublishResult, Subscriber, SubscriberStats
from broker.pep.context import PepContext
from broker.pep.registry_audit import RegistryAudit
from broker.pep.sink import Delivery, Retracted

#: The stream the assistance workflow travels on.
STREAM = "assistance"


def desk_group(participant: str) -> str:
    """The consumer group of a node's assistance desk (its own delivery channel), prefixed
    with its id: the only groups the Kafka ACLs let it use."""
    return f"{participant}.assist"


@dataclass(frozen=True, slots=True)
class RequestDraft:
    """What a requester fills in; the desk adds the ids, times and labels."""

    member_states: tuple[str, ...]
    needs: tuple[Need, ...]
    description: str
    urgency: str = "PRIORITY"
    tlp: str = "AMBER"
    incident: str | None = None
    categories: tuple[str, ...] = ()
    deadline: datetime | None = None
    assistance_type: str = "TECHNICAL"
    contact: Contact | None = None
    exercise: str | None = None


@dataclass(frozen=True, slots=True)
class OfferDraft:
    kind: str
    notice_hours: int
    needs: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    people: int = 1
    deployment: str = "EITHER"
    available_from: datetime | None = None
    available_until: datetime | None = None
    languages: tuple[str, ...] = ()
    note: str = ""
    contact: Contact | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """One step sent: to whom, who the policy kept out (and why), the case after it."""

    case_id: str
    message_id: str
    step: str
    recipients: tuple[str, ...]
    denied: tuple[tuple[str, tuple[str, ...]], ...]
    case: Case | None = field(default=None, repr=False)
    #: What the publisher did: every organisation's decision, the copies.
    result: PublishResult | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case_id,
            "message_id": self.message_id,
            "step": self.step,
            "recipients": list(self.recipients),
            "state": self.case.state if self.case is not None else None,
            "denied": [{"org": o, "rules": list(r)} for o, r in self.denied],
        }


class CaseSink:
    """The desk's sink: the workflow check already took each step into the case book, so
    this only counts what the desk's channel delivered (other payload types on the stream,
    SIENA case messages, are for the node's other channels)."""

    def __init__(self) -> None:
        self.delivered = 0

    async def deliver(self, delivery: Delivery) -> None:
        self.delivered += 1

    async def retract(self, retraction: Retracted) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


class AssistDesk(Service):
    """The assistance desk of this node's participant. `async with AssistDesk(ctx, me)`."""

    def __init__(
        self,
        ctx: PepContext,
        participant: str,
        *,
        clock: Clock = utc_now,
        audit: AuditLog | None = None,
    ) -> None:
        ctx.envelope.node.acting_as(participant)
        self.participant = participant
        self._ctx = ctx
        self._clock = clock
        self.book = CaseBook.of_node(ctx.settings.home, ctx.envelope.store, participant)
        workflows = assist_workflows(self.book, lambda: ctx.registry)
        self._audit = audit if audit is not None else ctx.audit_log(participant, "assist")
        # The desk owns its log, shared by its publisher and subscriber: it logs the
        # registry snapshots taking effect there (once, not once per user of the log).
        self._registry_audit = RegistryAudit(ctx.envelope.trusted, self._audit)
        self._publisher = Publisher(
            participant, ctx, audit=self._audit, workflows=workflows, log_registry=False
        )
        self._subscriber = Subscriber(
            participant,
            ctx,
            CaseSink(),
            group_id=desk_group(participant),
            streams=(STREAM,),
            audit=self._audit,
            receipts=False,
            workflows=workflows,
            log_registry=False,
        )

    async def start(self) -> None:
        try:
            await self._audit.start()
            await self._registry_audit.start()
            await self._publisher.start()
            await self._subscriber.start()
        except BaseException:
            await to_the_end(self.stop())
            raise

    async def stop(self) -> None:
        self._registry_audit.stop()
        await self._subscriber.stop()
        await self._publisher.stop()
        await self._audit.stop()
        self.book.close()

    # -- reading ---------------------------------------------------------------------

    async def sync(self) -> SubscriberStats:
        """Read everything that arrived on the assistance stream into the case book."""
        return await self._subscriber.run(until_idle=True)

    def cases(self) -> list[CaseView]:
        return self.book.cases(self._ctx.registry)

    def view(self, case_id: str) -> CaseView:
        return self.book.view(case_id, self._ctx.registry)

    def crisis_incidents(self) -> frozenset[str]:
        """Incidents under a declared crisis, as this node's crisis board says now."""
        return self._publisher.crisis.active_incidents()

    # -- sending ---------------------------------------------------------------------

    async def request(self, draft: RequestDraft) -> Sent:
        """Ask for help on behalf of Member States. During a declared crisis for its
        incident the request is flagged, and its labels carry the crisis's Member States,
        so rule 10 takes an AMBER one to every operational participant."""
        if not draft.needs:
            raise ConfigError("a request names at least one need (--need)")
        now = self._clock()
        crisis_states: tuple[str, ...] = ()
        if draft.incident is not None:
            for decl in self._publisher.crisis.declarations():
                if decl.incident == draft.incident and decl.in_force(now):
                    crisis_states = decl.member_states
        categories = set(draft.categories) | {c for n in draft.needs for c in n.categories}
        if not categories:
            raise ConfigError("say what the incident is about: --category (e.g. malicious-code)")
        request = Request(
            id=str(uuid.uuid4()),
            requester=self.participant,
            requested=now,
            member_states=tuple(sorted(set(draft.member_states))),
            needs=draft.needs,
            urgency=draft.urgency,
            description=draft.description,
            incident=draft.incident,
            deadline=draft.deadline,
            assistance_type=draft.assistance_type,
            crisis=bool(crisis_states),
            contact=draft.contact,
        )
        labels = Labels.of(
            draft.tlp,
            categories=categories,
            incident=draft.incident,
            member_states=set(request.member_states) | set(crisis_states),
            exercise=draft.exercise,
        )
        return await self._send(request, labels, ())

    async def offer(self, case_id: str, draft: OfferDraft) -> Sent:
        case = self.view(case_id).case
        offer = Offer(
            id=str(uuid.uuid4()),
            request_id=case.id,
            offerer=self.participant,
            offered=self._clock(),
            kind=draft.kind,
            notice_hours=draft.notice_hours,
            needs=draft.needs,
            capabilities=draft.capabilities,
            people=draft.people,
            deployment=draft.deployment,
            available_from=draft.available_from,
            available_until=draft.available_until,
            languages=draft.languages,
            note=draft.note,
            contact=draft.contact,
        )
        return await self._step(case, offer)

    async def accept(self, case_id: str, offer_ids: Sequence[str], note: str = "") -> Sent:
        """Accept offers (ids or unique prefixes of ids) made on the request."""
        case = self.view(case_id).case
        chosen = []
        for wanted in offer_ids:
            hits = [o for o in case.offers if o.id.startswith(wanted.strip().lower())]
            if len(hits) != 1:
                known = ", ".join(f"{o.id[:8]} ({o.offerer})" for o in case.offers) or "none"
                raise ConfigError(
                    f"{wanted!r} names {len(hits)} offers on request {case.id[:8]}; "
                    f"offers known here: {known}"
                )
            chosen.append((hits[0].id, hits[0].offerer))
        step = Acceptance(
            id=str(uuid.uuid4()),
            request_id=case.id,
            accepted_by=self.participant,
            accepted=self._clock(),
            offers=tuple(chosen),
            note=note,
        )
        return await self._step(case, step)

    async def status(self, case_id: str, phase: str, note: str = "") -> Sent:
        case = self.view(case_id).case
        step = StatusUpdate(
            id=str(uuid.uuid4()),
            request_id=case.id,
            author=self.participant,
            time=self._clock(),
            phase=phase,
            note=note,
        )
        return await self._step(case, step)

    async def close(self, case_id: str, outcome: str, report: str) -> Sent:
        case = self.view(case_id).case
        step = Closure(
            id=str(uuid.uuid4()),
            request_id=case.id,
            closed_by=self.participant,
            closed=self._clock(),
            outcome=outcome,
            report=report,
        )
        return await self._step(case, step)

    async def _step(self, case: Case, step: Step) -> Sent:
        # The publisher asks the state machine first (a refusal is audited there); a step
        # with no one to send to (a closure nobody else saw) is kept by this node alone.
        recipients = recipients_for(case, step, self.participant)
        return await self._send(step, case.labels, recipients)

    async def _send(self, step: Step, labels: Labels, recipients: tuple[str, ...]) -> Sent:
        result = await self._publisher.publish(
            step.payload_type,
            step.to_avro(),
            labels=labels,
            recipients=recipients,
            message_id=step.id,
        )
        case_id = step.id if isinstance(step, Request) else step.request_id
        denied = tuple(
            (d.org, d.rules) for d in result.denied if not recipients or d.org in recipients
        )
        try:
            case: Case | None = self.view(case_id).case
        except ConfigError:
            case = None
        return Sent(
            case_id, result.message_id, step.payload_type, result.recipients, denied, case, result
        )
