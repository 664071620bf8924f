"""The Integrated EU Cybersecurity Situation Report, as data: counts, trends, tops, crises.

Built from an `Inbox` (broker.pep.inbox): only what the reader is entitled to
receive, opened and re-checked by the policy. Nothing else goes in, so a
report never tells its reader of a message it may not have.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker.pep.control import CrisisDeclaration
from broker.pep.inbox import Coverage, Inbox
from broker.pep.sink import Delivery
from broker.vocabulary import TLP_LEVELS
from connectors._misp_event import all_attributes, event_of
from connectors._observables import summarise
from connectors._stix_object import object_of

#: How many top indicators and malware families a report lists.
TOP = 10
ENTITLEMENT = (
    "Built only from what {reader} is entitled to receive: records on its community's "
    "topics encrypted for it, verified, and allowed by the policy for receipt with the "
    "live crisis state. Nothing it may not receive was read."
)
#: MISP galaxy tags naming a malware family, e.g. misp-galaxy:ransomware="SamSam".
_GALAXY = re.compile(
    r'^misp-galaxy:(?:ransomware|malpedia|tool|rat|botnet|stealer|banker|android|exploit-kit)="([^"]+)"$'
)
_FAMILY_PREFIXES = ("malware-family:", "malware:", "family:")


@dataclass(frozen=True, slots=True)
class Count:
    """One row of a breakdown: this period, the previous one of the same length."""

    key: str
    now: int
    before: int

    @property
    def trend(self) -> str:
        """ "+3", "-1", "=" or "new"."""
        if self.before == 0:
            return "new" if self.now else "="
        d = self.now - self.before
        return "=" if d == 0 else f"{d:+d}"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "count": self.now, "previous": self.before, "trend": self.trend}


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    time: datetime
    what: str


@dataclass(frozen=True, slots=True)
class Crisis:
    incident: str
    member_states: tuple[str, ...]
    declared_by: str
    declared: datetime
    expires: datetime
    state: str  # active | ended | expired
    timeline: tuple[TimelineEvent, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "member_states": list(self.member_states),
            "declared_by": self.declared_by,
            "declared": self.declared.isoformat(),
            "expires": self.expires.isoformat(),
            "state": self.state,
            "timeline": [{"time": e.time.isoformat(), "what": e.what} for e in self.timeline],
        }


@dataclass(frozen=True, slots=True)
class Assistance:
    message_id: str
    requester: str
    assistance_type: str
    urgency: str
    member_state: str | None
    incident: str | None
    deadline: datetime | None
    description: str

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "requester": self.requester,
            "assistance_type": self.assistance_type,
            "urgency": self.urgency,
            "member_state": self.member_state,
            "incident": self.incident,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class Sitrep:
    reader: str
    generated: datetime
    since: datetime
    until: datetime
    previous_since: datetime
    total: Count
    by_community: tuple[Count, ...]
    by_category: tuple[Count, ...]
    by_tlp: tuple[Count, ...]
    by_member_state: tuple[Count, ...]
    by_type: tuple[Count, ...]
    top_indicators: tuple[tuple[str, str, int], ...]
    malware_families: tuple[tuple[str, int], ...]
    crises: tuple[Crisis, ...]
    assistance: tuple[Assistance, ...]
    retracted: int
    coverage: Coverage
    previous_coverage: Coverage
    notes: tuple[str, ...] = field(default=())

    @property
    def entitlement(self) -> str:
        return ENTITLEMENT.format(reader=self.reader)

    def to_json(self) -> dict[str, Any]:

        def rows(cs: tuple[Count, ...]) -> list[dict[str, Any]]:
            return [c.to_json() for c in cs]

        return {
            "title": "Integrated EU Cybersecurity Situation Report",
            "reader": self.reader,
            "generated": self.generated.isoformat(),
            "period": {"since": self.since.isoformat(), "until": self.until.isoformat()},
            "previous_period": {
                "since": self.previous_since.isoformat(),
                "until": self.since.isoformat(),
            },
            "entitlement": self.entitlement,
            "total": self.total.to_json(),
            "by_community": rows(self.by_community),
            "by_category": rows(self.by_category),
            "by_tlp": rows(self.by_tlp),
            "by_member_state": rows(self.by_member_state),
            "by_type": rows(self.by_type),
            "top_indicators": [
                {"value": v, "type": t, "count": n} for v, t, n in self.top_indicators
            ],
            "malware_families": [{"name": n, "count": c} for n, c in self.malware_families],
            "crises": [c.to_json() for c in self.crises],
            "open_assistance_requests": [a.to_json() for a in self.assistance],
            "retracted": self.retracted,
            "coverage": self.coverage.to_json(),
            "previous_coverage": self.previous_coverage.to_json(),
            "notes": list(self.notes),
        }


def _breakdown(
    now: Counter[str], before: Counter[str], order: Sequence[str] = ()
) -> tuple[Count, ...]:
    keys = [k for k in order if k in now or k in before]
    keys += sorted((set(now) | set(before)) - set(keys), key=lambda k: (-now[k], k))
    return tuple(Count(k, now[k], before[k]) for k in keys)


def _counts(
    deliveries: Iterable[Delivery], community_of: Mapping[str, str]
) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {
        k: Counter() for k in ("community", "category", "tlp", "member_state", "type")
    }
    for d in deliveries:
        out["community"][community_of.get(d.sender, "unknown")] += 1
        out["tlp"][d.labels.tlp] += 1
        out["type"][d.payload_type] += 1
        for c in d.labels.categories or ("uncategorised",):
            out["category"][c] += 1
        for m in _member_states(d):
            out["member_state"][m] += 1
    return out


def _member_states(d: Delivery) -> tuple[str, ...]:
    states = set(d.labels.member_states)
    rec_states = d.record.get("member_states")
    if isinstance(rec_states, list):
        states.update(str(s) for s in rec_states)
    if isinstance(d.record.get("member_state"), str):
        states.add(d.record["member_state"])
    return tuple(sorted(states))


def malware_families(d: Delivery) -> set[str]:
    """Malware family names a record carries in its tags (MISP galaxies, family: tags); a
    STIX malware object's name, the galaxy clusters of a MISP event."""
    names: set[str] = set()
    if d.payload_type == "StixObject" and d.record.get("type") == "malware":
        name = object_of(d.record).get("name")
        if isinstance(name, str) and name.strip():
            names.add(name.strip())
    tags = [*(d.record.get("labels") or ()), *(d.record.get("galaxy_clusters") or ())]
    for tag in tags:
        if not isinstance(tag, str):
            continue
        m = _GALAXY.match(tag)
        if m:
            names.add(m.group(1).strip())
            continue
        for prefix in _FAMILY_PREFIXES:
            if tag.lower().startswith(prefix):
                names.add(tag[len(prefix) :].strip().strip('"'))
    return {n for n in names if n}


def indicators_of(d: Delivery) -> list[tuple[str, str]]:
    """(value, type) of every indicator a delivery carries: an Indicator record, a STIX
    indicator (its value when the pattern tests one, else the pattern), the `to_ids`
    attributes of a MISP event."""
    if d.payload_type == "Indicator":
        key = _indicator_key(d.record)
        return [key] if key is not None else []
    if d.payload_type == "StixObject" and d.record.get("type") == "indicator":
        obj = object_of(d.record)
        pattern = obj.get("pattern")
        if not isinstance(pattern, str):
            return []
        if obj.get("pattern_type", "stix") == "stix":
            try:
                single = summarise(pattern).single
            except Exception:  # a pattern stix2-patterns cannot read: count it as written
                single = None
            if single is not None:
                return [(single.value, single.observable_type)]
        return [(pattern, str(obj.get("pattern_type") or "stix"))]
    if d.payload_type == "MispEvent":
        return [
            (str(a.get("value")), str(a.get("type")))
            for a in all_attributes(event_of(d.record))
            if a.get("to_ids") in (True, "1", 1) and a.get("value")
        ]
    return []


def _indicator_key(rec: Mapping[str, Any]) -> tuple[str, str] | None:
    value = rec.get("value") or rec.get("pattern")
    if not value:
        return None
    return str(value), str(rec.get("observable_type") or rec.get("pattern_type") or "")


def _crises(
    declarations: Iterable[CrisisDeclaration],
    deliveries: Sequence[Delivery],
    since: datetime,
    until: datetime,
) -> tuple[Crisis, ...]:
    out = []
    for decl in declarations:
        state = "active" if decl.in_force(until) else ("ended" if not decl.active else "expired")
        if state != "active" and decl.created < since:
            continue  # ended before the period: not part of this picture
        verb = "declared" if decl.active else "ended"
        states = ", ".join(decl.member_states)
        events = [TimelineEvent(decl.created, f"crisis {verb} by {decl.declared_by} for {states}")]
        for d in deliveries:
            if d.labels.incident == decl.incident:
                events.append(
                    TimelineEvent(d.received, f"{d.payload_type} from {d.sender} ({d.labels.tlp})")
                )
        if decl.active:
            events.append(TimelineEvent(decl.expires, "declaration expires"))
        out.append(
            Crisis(
                decl.incident,
                decl.member_states,
                decl.declared_by,
                decl.created,
                decl.expires,
                state,
                tuple(sorted(events, key=lambda e: e.time)),
            )
        )
    return tuple(sorted(out, key=lambda c: (c.state != "active", c.incident)))


def _assistance(deliveries: Iterable[Delivery], until: datetime) -> tuple[Assistance, ...]:
    out = []
    for d in deliveries:
        if d.payload_type != "AssistanceRequest":
            continue
        r = d.record
        deadline = r.get("deadline")
        if isinstance(deadline, datetime) and deadline < until:
            continue  # past its deadline: no longer open
        out.append(
            Assistance(
                d.message_id,
                str(r.get("requester") or d.sender),
                str(r.get("assistance_type") or ""),
                str(r.get("urgency") or ""),
                # member_states (on whose behalf) since the assistance workflow; member_state
                # in requests written before it.
                ",".join(r.get("member_states") or ()) or r.get("member_state"),
                r.get("incident") or d.labels.incident,
                deadline if isinstance(deadline, datetime) else None,
                str(r.get("description") or ""),
            )
        )
    return tuple(out)


COMMUNITY_ORDER = ("civilian", "law_enforcement", "diplomatic", "defence")


def build(
    reader: str,
    current: Inbox,
    previous: Inbox,
    *,
    community_of: Mapping[str, str],
    declarations: Iterable[CrisisDeclaration],
    generated: datetime,
) -> Sitrep:
    """The report of `current` (the period) against `previous` (the one before it).

    Retracted messages are left out of every count (their senders withdrew them).
    """
    live = [d for d in current.deliveries if d.message_id not in current.retracted]
    before = [d for d in previous.deliveries if d.message_id not in previous.retracted]
    now_c, before_c = _counts(live, community_of), _counts(before, community_of)
    indicators: Counter[tuple[str, str]] = Counter()
    families: Counter[str] = Counter()
    for d in live:
        for key in indicators_of(d):
            indicators[key] += 1
        for name in malware_families(d):
            families[name] += 1
    cov = current.coverage
    notes = []
    if cov.refused:
        refused = ", ".join(f"{n} {r}" for r, n in sorted(cov.refused.items()))
        notes.append(f"left out, refused on opening or by the policy: {refused}")
    if current.retracted:
        notes.append(f"{len(current.retracted)} message(s) retracted by their senders, left out")
    return Sitrep(
        reader=reader,
        generated=generated,
        since=cov.since,
        until=cov.until,
        previous_since=previous.coverage.since,
        total=Count("messages", len(live), len(before)),
        by_community=_breakdown(now_c["community"], before_c["community"], COMMUNITY_ORDER),
        by_category=_breakdown(now_c["category"], before_c["category"]),
        by_tlp=_breakdown(now_c["tlp"], before_c["tlp"], TLP_LEVELS),
        by_member_state=_breakdown(now_c["member_state"], before_c["member_state"]),
        by_type=_breakdown(now_c["type"], before_c["type"]),
        top_indicators=tuple(
            (v, t, n)
            for (v, t), n in sorted(indicators.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
        ),
        malware_families=tuple(sorted(families.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]),
        crises=_crises(declarations, live, cov.since, cov.until),
        assistance=_assistance(live, cov.until),
        retracted=len(current.retracted),
        coverage=cov,
        previous_coverage=previous.coverage,
        notes=tuple(notes),
    )
