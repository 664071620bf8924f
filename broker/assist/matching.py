"""Matching: rank capability inventory entries against a request's needs, saying why.

For each need, every entry this node can see is scored on seven criteria,
each from 0 to 1, weighted (`WEIGHTS`, summing to 1):

- kind: the same kind 1; a kind that includes it (a rapid reaction team does
  incident response, forensics and malware analysis) 0.75; a neighbour
  (incident response and forensics) 0.5; else 0;
- skills: the share of the need's skills the entry lists (none asked: 1);
- languages: 1 if the entry speaks one of the need's languages (none asked: 1);
- availability: 1 if available when the need starts, 0.5 if only later
  within the need's window, 0 if not within it;
- notice: 1 within the need's longest notice, else that notice divided by the
  entry's (no limit asked: 1);
- deployment: 1 unless one side wants on-site work and the other offers only
  remote (or the reverse);
- capacity: the entry's capacity over the people asked for, at most 1.

An entry whose owner may not offer for the need (not an active operational
participant, or a mandate that covers none of the need's categories: the
same rule an offer is checked against) is still listed, after every
eligible one, with the reason. Ties go to the shorter notice, then the key
(then the rest of the entry), so the ranking does not depend on the order
entries were read in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from broker.assist.entitlement import need_categories
from broker.assist.inventory import CapabilityEntry
from broker.assist.steps import Need, Request
from broker.trust.registry import Registry

WEIGHTS: dict[str, float] = {
    "kind": 0.25,
    "skills": 0.25,
    "languages": 0.15,
    "availability": 0.15,
    "notice": 0.10,
    "deployment": 0.05,
    "capacity": 0.05,
}
#: kind -> the kinds it includes (score 0.75).
_INCLUDES: dict[str, frozenset[str]] = {
    "RAPID_REACTION_TEAM": frozenset({"INCIDENT_RESPONSE", "FORENSICS", "MALWARE_ANALYSIS"}),
    "INCIDENT_RESPONSE": frozenset({"FORENSICS"}),
}
#: Neighbouring kinds (score 0.5), either way round.
_NEIGHBOURS = frozenset(
    {
        frozenset({"INCIDENT_RESPONSE", "MALWARE_ANALYSIS"}),
        frozenset({"FORENSICS", "MALWARE_ANALYSIS"}),
        frozenset({"THREAT_INTELLIGENCE", "MALWARE_ANALYSIS"}),
        frozenset({"VULNERABILITY_ASSESSMENT", "INCIDENT_RESPONSE"}),
    }
)


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    score: float
    words: str

    @property
    def met(self) -> bool:
        return self.score >= 1.0


@dataclass(frozen=True, slots=True)
class Match:
    """One entry against one need: its score, whether its owner may offer, and why."""

    need: Need
    entry: CapabilityEntry
    score: float
    eligible: bool
    criteria: tuple[Criterion, ...]
    #: Why the owner may not offer for this need ("" if it may).
    barrier: str = ""

    def why(self) -> str:
        parts = [c.words for c in self.criteria]
        if self.barrier:
            parts.insert(0, f"cannot offer: {self.barrier}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "need": self.need.id,
            "key": self.entry.key,
            "owner": self.entry.owner,
            "title": self.entry.title,
            "score": round(self.score, 3),
            "eligible": self.eligible,
            "barrier": self.barrier,
            "criteria": {
                c.name: {"score": round(c.score, 3), "why": c.words} for c in self.criteria
            },
        }


def _words(kind: str) -> str:
    return kind.lower().replace("_", " ")


def _kind(need: Need, entry: CapabilityEntry) -> Criterion:
    if entry.kind == need.kind:
        return Criterion("kind", 1.0, _words(entry.kind))
    if need.kind in _INCLUDES.get(entry.kind, frozenset()):
        return Criterion("kind", 0.75, f"{_words(entry.kind)} includes {_words(need.kind)}")
    if frozenset({need.kind, entry.kind}) in _NEIGHBOURS:
        return Criterion("kind", 0.5, f"{_words(entry.kind)}, near {_words(need.kind)}")
    return Criterion("kind", 0.0, f"{_words(entry.kind)}, not {_words(need.kind)}")


def _skills(need: Need, entry: CapabilityEntry) -> Criterion:
    wanted = {s.strip().lower() for s in need.skills if s.strip()}
    if not wanted:
        return Criterion("skills", 1.0, "no particular skill asked")
    have = {s.strip().lower() for s in entry.skills}
    missing = sorted(wanted - have)
    got = len(wanted) - len(missing)
    words = f"skills {got}/{len(wanted)}" + (f" (missing: {', '.join(missing)})" if missing else "")
    return Criterion("skills", got / len(wanted), words)


def _languages(need: Need, entry: CapabilityEntry) -> Criterion:
    wanted = {x.lower() for x in need.languages}
    if not wanted:
        return Criterion("languages", 1.0, "any language")
    common = sorted(wanted & {x.lower() for x in entry.languages})
    if common:
        return Criterion("languages", 1.0, f"speaks {', '.join(common)}")
    return Criterion("languages", 0.0, f"speaks none of {', '.join(sorted(wanted))}")


def _availability(need: Need, entry: CapabilityEntry, now: datetime) -> Criterion:
    start = need.needed_from or now
    end = need.needed_until
    since, until = entry.available_from, entry.available_until
    if until is not None and until <= start:
        return Criterion("availability", 0.0, f"available only until {until:%Y-%m-%d %H:%M}")
    if since is None or since <= start:
        return Criterion("availability", 1.0, "available when needed")
    if end is None or since < end:
        return Criterion("availability", 0.5, f"available from {since:%Y-%m-%d %H:%M} only")
    return Criterion("availability", 0.0, f"available from {since:%Y-%m-%d %H:%M}, too late")


def _notice(need: Need, entry: CapabilityEntry) -> Criterion:
    hours = entry.notice_hours
    limit = need.max_notice_hours
    if limit is None:
        return Criterion("notice", 1.0, f"notice {hours} h")
    if hours <= limit:
        return Criterion("notice", 1.0, f"notice {hours} h <= {limit} h")
    return Criterion("notice", limit / hours, f"notice {hours} h > {limit} h")


def _deployment(need: Need, entry: CapabilityEntry) -> Criterion:
    if "EITHER" in (need.deployment, entry.deployment) or need.deployment == entry.deployment:
        return Criterion("deployment", 1.0, _words(entry.deployment))
    return Criterion(
        "deployment", 0.0, f"{_words(entry.deployment)} only, {_words(need.deployment)} asked"
    )


def _capacity(need: Need, entry: CapabilityEntry) -> Criterion:
    score = min(1.0, entry.capacity / need.people) if need.people > 0 else 1.0
    sign = ">=" if score >= 1.0 else "<"
    return Criterion("capacity", score, f"{entry.capacity} {sign} {need.people} asked")


def barrier(registry: Registry, owner: str, need: Need, request_categories: Iterable[str]) -> str:
    """Why `owner` may not offer for `need` ("" if it may): the offer rule, on registry facts."""
    if owner not in registry:
        return f"{owner} is not in the registry"
    who = registry.get(owner)
    if who.role != "operational":
        return f"{owner} is a {who.role} participant; only operational participants offer"
    if who.status != "active":
        return f"{owner} is {who.status}"
    cats = need_categories(need, request_categories)
    if not who.categories & cats:
        return f"{owner}'s mandate covers none of {', '.join(sorted(cats))}"
    return ""


def score(need: Need, entry: CapabilityEntry, now: datetime) -> tuple[float, tuple[Criterion, ...]]:
    """The weighted score of `entry` for `need` (0 to 1) and each criterion."""
    criteria = (
        _kind(need, entry),
        _skills(need, entry),
        _languages(need, entry),
        _availability(need, entry, now),
        _notice(need, entry),
        _deployment(need, entry),
        _capacity(need, entry),
    )
    total = sum(WEIGHTS[c.name] * c.score for c in criteria)
    # Rounded: equal merits compare equal whatever order the floats were added in.
    return round(min(1.0, max(0.0, total)), 6), criteria


def rank_need(
    need: Need,
    entries: Iterable[CapabilityEntry],
    registry: Registry,
    request_categories: Iterable[str],
    now: datetime,
) -> list[Match]:
    """Every entry for one need, best first (eligible owners before the others)."""
    cats = tuple(request_categories)
    matches = []
    for entry in entries:
        total, criteria = score(need, entry, now)
        why_not = barrier(registry, entry.owner, need, cats)
        matches.append(Match(need, entry, total, not why_not, criteria, why_not))
    return sorted(
        matches,
        key=lambda m: (
            not m.eligible,
            -m.score,
            m.entry.notice_hours,
            m.entry.key,
            repr(sorted(m.entry.to_json().items())),  # a total order: input order never counts
        ),
    )


def rank(
    request: Request,
    request_categories: Iterable[str],
    entries: Iterable[CapabilityEntry],
    registry: Registry,
    now: datetime,
) -> dict[str, list[Match]]:
    """For each need of `request` (by id), the entries ranked for it."""
    pool = [e for e in entries if not e.withdrawn and e.owner != request.requester]
    cats = tuple(request_categories)
    return {n.id: rank_need(n, pool, registry, cats, now) for n in request.needs}
