"""The typed steps of an assistance case, to and from their Avro records.

A case is a thread (`broker.pep.workflow`): the request opens it (its id is
the case id and the request's message id), every later step names it in
`request_id`. These dataclasses are what the state machine, the case book and
the CLI handle; the Avro records (schemas/Assistance*.avsc) are what travels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from broker.errors import MalformedRecord

Urgency = Literal["ROUTINE", "PRIORITY", "IMMEDIATE"]
URGENCIES: tuple[str, ...] = ("ROUTINE", "PRIORITY", "IMMEDIATE")
KINDS: tuple[str, ...] = (
    "INCIDENT_RESPONSE",
    "FORENSICS",
    "MALWARE_ANALYSIS",
    "THREAT_INTELLIGENCE",
    "RAPID_REACTION_TEAM",
    "VULNERABILITY_ASSESSMENT",
    "CRISIS_COORDINATION",
    "OTHER",
)
DEPLOYMENTS: tuple[str, ...] = ("REMOTE", "ON_SITE", "EITHER")
PHASES: tuple[str, ...] = ("DEPLOYING", "DEPLOYED", "UPDATE", "COMPLETED", "WITHDRAWN")
OUTCOMES: tuple[str, ...] = (
    "RESOLVED",
    "PARTIALLY_RESOLVED",
    "NOT_NEEDED",
    "NO_SUITABLE_OFFER",
    "WITHDRAWN",
)
ASSISTANCE_TYPES: tuple[str, ...] = (
    "TECHNICAL",
    "FORENSIC",
    "COORDINATION",
    "INFORMATION",
    "OTHER",
)


def _strs(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values or ())


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Contact:
    """A person to call: personal data (redacted for whom rule 8 says)."""

    name: str
    organisation: str | None = None
    email: str | None = None
    phone: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "organisation": self.organisation,
            "email": self.email,
            "phone": self.phone,
        }

    @classmethod
    def from_avro(cls, rec: Mapping[str, Any] | None) -> Contact | None:
        if rec is None:
            return None
        return cls(str(rec["name"]), rec.get("organisation"), rec.get("email"), rec.get("phone"))


@dataclass(frozen=True, slots=True)
class Need:
    """One thing a request asks for (eu.jcu.v1.AssistanceNeed)."""

    id: str
    kind: str
    categories: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    people: int = 1
    deployment: str = "EITHER"
    max_notice_hours: int | None = None
    needed_from: datetime | None = None
    needed_until: datetime | None = None
    note: str = ""

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "categories": list(self.categories),
            "skills": list(self.skills),
            "languages": list(self.languages),
            "people": self.people,
            "deployment": self.deployment,
            "max_notice_hours": self.max_notice_hours,
            "needed_from": self.needed_from,
            "needed_until": self.needed_until,
            "note": self.note,
        }

    @classmethod
    def from_avro(cls, rec: Mapping[str, Any]) -> Need:
        return cls(
            id=str(rec["id"]),
            kind=str(rec["kind"]),
            categories=_strs(rec.get("categories")),
            skills=_strs(rec.get("skills")),
            languages=_strs(rec.get("languages")),
            people=int(rec.get("people", 1)),
            deployment=str(rec.get("deployment", "EITHER")),
            max_notice_hours=rec.get("max_notice_hours"),
            needed_from=rec.get("needed_from"),
            needed_until=rec.get("needed_until"),
            note=str(rec.get("note") or ""),
        )


@dataclass(frozen=True, slots=True)
class Request:
    """The request that opens a case (eu.jcu.v1.AssistanceRequest); its id is the case id."""

    id: str
    requester: str
    requested: datetime
    member_states: tuple[str, ...]
    needs: tuple[Need, ...]
    urgency: str
    description: str
    incident: str | None = None
    deadline: datetime | None = None
    assistance_type: str = "TECHNICAL"
    crisis: bool = False
    contact: Contact | None = None

    payload_type: str = field(default="AssistanceRequest", init=False)

    @property
    def request_id(self) -> str:
        return self.id

    @property
    def author(self) -> str:
        return self.requester

    def need(self, need_id: str) -> Need | None:
        return next((n for n in self.needs if n.id == need_id), None)

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "requested": self.requested,
            "requester": self.requester,
            "assistance_type": self.assistance_type,
            "urgency": self.urgency,
            "description": self.description,
            "incident": self.incident,
            "deadline": self.deadline,
            "member_state": None,
            "contact": self.contact.to_avro() if self.contact else None,
            "member_states": list(self.member_states),
            "needs": [n.to_avro() for n in self.needs],
            "crisis": self.crisis,
        }

    @classmethod
    def from_avro(cls, rec: Mapping[str, Any]) -> Request:
        states = _strs(rec.get("member_states"))
        if not states and rec.get("member_state"):  # written with version 1
            states = (str(rec["member_state"]),)
        return cls(
            id=str(rec["id"]),
            requester=str(rec["requester"]),
            requested=rec["requested"],
            member_states=states,
            needs=tuple(Need.from_avro(n) for n in rec.get("needs") or ()),
            urgency=str(rec["urgency"]),
            description=str(rec["description"]),
            incident=_opt_str(rec.get("incident")),
            deadline=rec.get("deadline"),
            assistance_type=str(rec.get("assistance_type", "TECHNICAL")),
            crisis=bool(rec.get("crisis", False)),
            contact=Contact.from_avro(rec.get("contact")),
        )


@dataclass(frozen=True, slots=True)
class Offer:
    """An operational participant's offer of help (eu.jcu.v1.AssistanceOffer)."""

    id: str
    request_id: str
    offerer: str
    offered: datetime
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

    payload_type: str = field(default="AssistanceOffer", init=False)

    @property
    def author(self) -> str:
        return self.offerer

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "offerer": self.offerer,
            "offered": self.offered,
            "needs": list(self.needs),
            "capabilities": list(self.capabilities),
            "kind": self.kind,
            "people": self.people,
            "deployment": self.deployment,
            "notice_hours": self.notice_hours,
            "available_from": self.available_from,
            "available_until": self.available_until,
            "languages": list(self.languages),
            "note": self.note,
            "contact": self.contact.to_avro() if self.contact else None,
        }

    @classmethod
    def from_avro(cls, rec: Mapping[str, Any]) -> Offer:
        return cls(
            id=str(rec["id"]),
            request_id=str(rec["request_id"]),
            offerer=str(rec["offerer"]),
            offered=rec["offered"],
            kind=str(rec["kind"]),
            notice_hours=int(rec["notice_hours"]),
            needs=_strs(rec.get("needs")),
            capabilities=_strs(rec.get("capabilities")),
            people=int(rec.get("people", 1)),
            deployment=str(rec.get("deployment", "EITHER")),
            available_from=rec.get("available_from"),
            available_until=rec.get("available_until"),
            languages=_strs(rec.get("languages")),
            note=str(rec.get("note") or ""),
            contact=Contact.from_avro(rec.get("contact")),
        )


@dataclass(frozen=True, slots=True)
class Acceptance:
    """The requester accepts offers (eu.jcu.v1.AssistanceAcceptance): (offer id, offerer)."""

    id: str
    request_id: str
    accepted_by: str
    accepted: datetime
    offers: tuple[tuple[str, str], ...]
    note: str = ""

    payload_type: str = field(default="AssistanceAcceptance", init=False)

    @property
    def author(self) -> str:
        return self.accepted_by

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "accepted_by": self.accepted_by,
            "accepted": self.accepted,
            "offers": [{"offer_id": o, "offerer": who} for o, who in self.offers],
            "note": self.note,
        }

    @classmethod
    def from_avro(cls, rec: Mapping[str, Any]) -> Acceptance:
        return cls(
            id=str(rec["id"]),
            request_id=str(rec["request_id"]),
            accepted_by=str(rec["accepted_by"]),
            accepted=rec["accepted"],
            offers=tuple((str(o["offer_id"]), str(o["offerer"])) for o in rec.get("offers") or ()),
            note=str(rec.get("note") or ""),
        )


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A deployment or status update (eu.jcu.v1.AssistanceStatus)."""

    id: str
    request_id: str
    author: str
    time: datetime
    phase: str
    note: str = ""

    payload_type: str = field(default="AssistanceStatus", init=False)

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "author": self.author,
            "time": self.time,
            "phase": self.phase,
            "note": self.note,
        }

    @classmethod
    def from_avro(cls, rec: Mapping[str, Any]) -> StatusUpdate:
        return cls(
            id=str(rec["id"]),
            request_id=str(rec["request_id"]),
            author=str(rec["author"]),
            time=rec["time"],
            phase=str(rec.get("phase", "UPDATE")),
            note=str(rec.get("note") or ""),
        )


@dataclass(frozen=True, slots=True)
class Closure:
    """The requester closes the case with a short report (eu.jcu.v1.AssistanceClosure)."""

    id: str
    request_id: str
    closed_by: str
    closed: datetime
    outcome: str
    report: str

    payload_type: str = field(default="AssistanceClosure", init=False)

    @property
    def author(self) -> str:
        return self.closed_by

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "closed_by": self.closed_by,
            "closed": self.closed,
            "outcome": self.outcome,
            "report": self.report,
        }

    @classmethod
    def from_avro(cls, rec: Mapping[str, Any]) -> Closure:
        return cls(
            id=str(rec["id"]),
            request_id=str(rec["request_id"]),
            closed_by=str(rec["closed_by"]),
            closed=rec["closed"],
            outcome=str(rec["outcome"]),
            report=str(rec["report"]),
        )


Step = Request | Offer | Acceptance | StatusUpdate | Closure
_TYPES: dict[
    str, type[Request] | type[Offer] | type[Acceptance] | type[StatusUpdate] | type[Closure]
]
_TYPES = {
    "AssistanceRequest": Request,
    "AssistanceOffer": Offer,
    "AssistanceAcceptance": Acceptance,
    "AssistanceStatus": StatusUpdate,
    "AssistanceClosure": Closure,
}
#: The word for each step, as people say it.
STEP_NAMES: dict[str, str] = {
    "AssistanceRequest": "request",
    "AssistanceOffer": "offer",
    "AssistanceAcceptance": "acceptance",
    "AssistanceStatus": "status update",
    "AssistanceClosure": "closure",
}


def step_from_record(payload_type: str, record: Mapping[str, Any]) -> Step:
    """The typed step of a decoded record (short or full payload type name)."""
    short = payload_type.rpartition(".")[2]
    kind = _TYPES.get(short)
    if kind is None:
        raise MalformedRecord(f"{short} is not a step of an assistance case")
    try:
        return kind.from_avro(record)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedRecord(f"{short} record is incomplete: {exc}") from None


def thread_of(step: Step) -> str:
    """The case a step belongs to: the request's id."""
    return step.id if isinstance(step, Request) else step.request_id
