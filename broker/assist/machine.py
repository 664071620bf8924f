"""The state machine of an assistance case, as one node sees it. Pure: no I/O.

    (none) --request--> OPEN --offer--> OFFERED --accept--> ACCEPTED --status DEPLOYED--> DEPLOYED
                          |                |  ^offer           |  ^offer, accept, status   |
                          +----------------+-------------------+--------------------------+
                                              --close--> CLOSED (nothing after it)

Every enforcement point runs the same `advance` on its own view of the case:
the sender's node before it sends a step, each recipient's node before it
delivers one. A view holds what the node sent or received: the requester
sees every offer (they are sealed to it); an offerer sees the request, its
own offers, the acceptance, the status updates of the parties and the
closure. Each check is made where the view can decide it (an offerer cannot
know another's offer, so it checks only the accepted offers that name it).

A refusal is a `Rejected` error whose `reason` says which rule failed:
`out-of-order` (the case's state does not allow the step), `not-entitled`
(the sender may not take it), `no-mandate` (the offerer's role or mandate
does not cover the need), `label-mismatch` (a step that does not carry its
request's labels), `malformed` (a step that is incomplete).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from broker.assist.entitlement import check_may_offer, check_may_request
from broker.assist.steps import (
    Acceptance,
    Closure,
    Offer,
    Request,
    StatusUpdate,
    Step,
)
from broker.envelope.labels import Labels
from broker.errors import LabelMismatch, MalformedRecord, NotEntitled, OutOfOrder
from broker.trust.registry import Registry
from broker.vocabulary import CATEGORIES, EU_MEMBER_STATES

State = Literal["OPEN", "OFFERED", "ACCEPTED", "DEPLOYED", "CLOSED"]
STATES: tuple[State, ...] = ("OPEN", "OFFERED", "ACCEPTED", "DEPLOYED", "CLOSED")
#: Team phases only an accepted offerer reports; UPDATE is news anyone in the case may give.
TEAM_PHASES = frozenset({"DEPLOYING", "DEPLOYED", "COMPLETED", "WITHDRAWN"})


@dataclass(frozen=True, slots=True)
class Case:
    """One assistance case as a node knows it."""

    request: Request
    #: The request's labels (TLP, categories, incident, Member States, exercise).
    labels: Labels
    state: State = "OPEN"
    #: The offers this view knows (all of them, for the requester), in order.
    offers: tuple[Offer, ...] = ()
    #: Accepted offers: (offer id, offerer), in order.
    accepted: tuple[tuple[str, str], ...] = ()
    updates: tuple[StatusUpdate, ...] = ()
    closure: Closure | None = None
    #: Who the request was sealed for (known to the requester's node only).
    audience: tuple[str, ...] = ()
    #: Accepted offerers whose team reported DEPLOYED (and not WITHDRAWN or COMPLETED since).
    deployed: frozenset[str] = field(default_factory=frozenset)

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def requester(self) -> str:
        return self.request.requester

    @property
    def offerers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(o.offerer for o in self.offers))

    @property
    def accepted_offerers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(who for _, who in self.accepted))

    @property
    def parties(self) -> tuple[str, ...]:
        """Who takes part in the work: the requester and the accepted offerers."""
        return (self.requester, *(o for o in self.accepted_offerers if o != self.requester))

    @property
    def is_open(self) -> bool:
        return self.state != "CLOSED"

    def offer(self, offer_id: str) -> Offer | None:
        return next((o for o in self.offers if o.id == offer_id), None)

    def updated(self) -> datetime:
        """When the case last moved, as far as this view knows."""
        times = [self.request.requested, *(o.offered for o in self.offers)]
        times += [u.time for u in self.updates]
        if self.closure is not None:
            times.append(self.closure.closed)
        return max(times)


def recipients_for(case: Case, step: Step, sender: str) -> tuple[str, ...]:
    """Whom a step of `case` is sealed for (its named recipients), from the sender's view:

    an offer, the requester; an acceptance, every organisation that offered (those not
    accepted learn so); a status update, the case's other parties; a closure, everyone the
    request reached and everyone who offered.
    """
    if isinstance(step, Offer):
        names: Iterable[str] = (case.requester,)
    elif isinstance(step, Acceptance):
        names = case.offerers
    elif isinstance(step, StatusUpdate):
        names = case.parties
    elif isinstance(step, Closure):
        names = (*case.audience, *case.offerers)
    else:
        return ()
    return tuple(sorted(set(names) - {sender}))


def advance(
    case: Case | None,
    step: Step,
    *,
    sender: str,
    message_id: str,
    labels: Labels,
    recipients: Iterable[str],
    viewer: str,
    registry: Registry,
) -> Case:
    """The case after `step`, sent by `sender` with `labels` to `recipients`, as `viewer` (the
    node's participant) sees it; raises a `Rejected` error if the step may not happen."""
    if step.author != sender:
        raise NotEntitled(
            f"a {step.payload_type} sent by {sender} names {step.author} as its author"
        )
    named = tuple(recipients)
    if isinstance(step, Request):
        if case is not None:
            raise OutOfOrder(f"request {step.id} exists already: a case is opened once")
        return _open(step, sender, message_id, labels, named, viewer, registry)
    if case is None:
        raise OutOfOrder(
            f"{step.payload_type} on request {step.request_id}, which {viewer} has not "
            "received: a step must follow the request it belongs to"
        )
    if case.closure is not None:
        raise OutOfOrder(
            f"request {case.id} was closed by {case.closure.closed_by} on "
            f"{case.closure.closed.isoformat()}: no {step.payload_type} may follow its closure"
        )
    if isinstance(step, Offer):
        after = _offer(case, step, sender, registry)
    elif isinstance(step, Acceptance):
        after = _accept(case, step, sender, viewer)
    elif isinstance(step, StatusUpdate):
        after = _status(case, step, sender)
    else:
        after = _close(case, step, sender)
    _same_labels(case, step, labels)
    # Who a step goes to follows from the case before it (the parties it had then).
    allowed = set(recipients_for(case, step, sender))
    if sender == viewer:
        extra = sorted(set(named) - allowed)
        if extra:
            raise NotEntitled(
                f"a {step.payload_type} on request {case.id} goes to "
                f"{', '.join(sorted(allowed)) or 'nobody'}, not to {', '.join(extra)}"
            )
    elif not isinstance(step, Closure) and viewer not in allowed:
        raise NotEntitled(
            f"a {step.payload_type} on request {case.id} does not go to {viewer} "
            f"(it goes to {', '.join(sorted(allowed)) or 'nobody'})"
        )
    return after


def _open(
    step: Request,
    sender: str,
    message_id: str,
    labels: Labels,
    named: tuple[str, ...],
    viewer: str,
    registry: Registry,
) -> Case:
    if message_id != step.id:
        raise MalformedRecord(f"a request's message id is its id; {message_id} != {step.id}")
    if not step.member_states:
        raise MalformedRecord(f"request {step.id} names no Member State on whose behalf it is made")
    foreign = sorted(set(step.member_states) - set(EU_MEMBER_STATES))
    if foreign:
        raise MalformedRecord(f"request {step.id} names what is not an EU Member State: {foreign}")
    check_may_request(registry, sender, step.member_states)
    if not step.needs:
        raise MalformedRecord(f"request {step.id} names no need")
    ids = [n.id for n in step.needs]
    if len(set(ids)) != len(ids):
        raise MalformedRecord(f"request {step.id} repeats a need id: {ids}")
    for need in step.needs:
        unknown = sorted(set(need.categories) - set(CATEGORIES))
        if unknown:
            raise MalformedRecord(f"need {need.id} names unknown categories {unknown}")
        if need.people < 1:
            raise MalformedRecord(f"need {need.id} asks for {need.people} people")
        if not set(need.categories) <= set(labels.categories):
            raise LabelMismatch(
                f"need {need.id} is about {sorted(need.categories)}, which the request's "
                f"labels {list(labels.categories)} do not name: the policy decided without them"
            )
    if not labels.categories:
        raise LabelMismatch(f"request {step.id} is labelled with no category")
    if step.incident != labels.incident:
        raise LabelMismatch(
            f"request {step.id} is about incident {step.incident}, its labels about "
            f"{labels.incident}"
        )
    if not set(step.member_states) <= set(labels.member_states):
        raise LabelMismatch(
            f"request {step.id} is made for {list(step.member_states)}, which its labels' "
            f"Member States {list(labels.member_states)} do not include"
        )
    audience = named if sender == viewer else ()
    return Case(step, _case_labels(labels), audience=audience)


def _case_labels(labels: Labels) -> Labels:
    """What every step of a case must carry: the request's labels without the per-copy ones."""
    return Labels.of(
        labels.tlp,
        handling_codes=labels.handling_codes,
        categories=labels.categories,
        exercise=labels.exercise,
        incident=labels.incident,
        member_states=labels.member_states,
    )


def _same_labels(case: Case, step: Step, labels: Labels) -> None:
    mine = _case_labels(labels)
    if mine != case.labels:
        raise LabelMismatch(
            f"a {step.payload_type} on request {case.id} carries TLP:{labels.tlp} "
            f"{list(labels.categories)} (incident {labels.incident}); every step carries the "
            f"request's TLP:{case.labels.tlp} {list(case.labels.categories)} "
            f"(incident {case.labels.incident})"
        )


def _offer(case: Case, step: Offer, sender: str, registry: Registry) -> Case:
    if sender == case.requester:
        raise NotEntitled(f"{sender} asked for help on request {case.id}; it does not offer it")
    if case.offer(step.id) is not None:
        raise OutOfOrder(f"offer {step.id} was made already")
    needs = case.request.needs
    if step.needs:
        unknown = [n for n in step.needs if case.request.need(n) is None]
        if unknown:
            raise MalformedRecord(
                f"offer {step.id} answers needs {unknown}, which request {case.id} does not have "
                f"(it has {', '.join(n.id for n in needs)})"
            )
        needs = tuple(n for n in needs if n.id in step.needs)
    if step.people < 1 or step.notice_hours < 0:
        raise MalformedRecord(f"offer {step.id}: {step.people} people at {step.notice_hours} h")
    check_may_offer(registry, sender, needs, case.labels.categories)
    state: State = "OFFERED" if case.state == "OPEN" else case.state
    return replace(case, state=state, offers=(*case.offers, step))


def _accept(case: Case, step: Acceptance, sender: str, viewer: str) -> Case:
    if sender != case.requester:
        raise NotEntitled(
            f"only {case.requester}, who made request {case.id}, may accept offers on it; "
            f"not {sender}"
        )
    if not step.offers:
        raise MalformedRecord(f"acceptance {step.id} accepts no offer")
    already = {offer_id for offer_id, _ in case.accepted}
    for offer_id, offerer in step.offers:
        if offer_id in already:
            raise OutOfOrder(f"offer {offer_id} on request {case.id} is accepted already")
        if viewer in (case.requester, offerer):  # a view that knows every offer it could name
            known = case.offer(offer_id)
            if known is None or known.offerer != offerer:
                raise OutOfOrder(
                    f"acceptance of offer {offer_id} by {offerer}, which was not made on "
                    f"request {case.id}"
                )
    state: State = "DEPLOYED" if case.state == "DEPLOYED" else "ACCEPTED"
    return replace(case, state=state, accepted=(*case.accepted, *step.offers))


def _status(case: Case, step: StatusUpdate, sender: str) -> Case:
    if case.state not in ("ACCEPTED", "DEPLOYED"):
        raise OutOfOrder(
            f"request {case.id} is {case.state.lower()}: no offer is accepted yet, so there is "
            "no deployment to report on"
        )
    if sender not in case.parties:
        raise NotEntitled(
            f"{sender} is not a party to request {case.id} (its parties: "
            f"{', '.join(case.parties)}); it may not report on it"
        )
    if step.phase in TEAM_PHASES and sender == case.requester:
        raise NotEntitled(
            f"a {step.phase} update is an accepted team's; {sender}, the requester, sends UPDATE"
        )
    deployed = set(case.deployed)
    if step.phase == "DEPLOYED":
        deployed.add(sender)
    elif step.phase in ("WITHDRAWN", "COMPLETED"):
        deployed.discard(sender)
    state: State = "DEPLOYED" if deployed or case.state == "DEPLOYED" else case.state
    return replace(case, state=state, updates=(*case.updates, step), deployed=frozenset(deployed))


def _close(case: Case, step: Closure, sender: str) -> Case:
    if sender != case.requester:
        raise NotEntitled(
            f"only {case.requester}, who made request {case.id}, may close it; not {sender}"
        )
    if not step.report.strip():
        raise MalformedRecord(f"closure of request {case.id} has no report")
    return replace(case, state="CLOSED", closure=step)
