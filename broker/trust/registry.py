"""The participant registry facts: who exists, where they belong, what they may receive.

The registry authority's `participants.yaml` is the source; a node takes the
facts from the registry snapshot it accepted (`broker.trust.snapshot`), never
from a file of its own. This module turns either into frozen, validated values
that the policy, the envelope and the connectors share. Keys are not here
(see `broker.trust.records`); this is the organisational truth only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from broker.errors import RegistryError
from broker.vocabulary import (  # noqa: F401  (re-exported: the registry's words)
    CATEGORIES,
    COMMUNITIES,
    EU_MEMBER_STATES,
    KEMS,
    ROLES,
    STATUSES,
    STREAMS,
    Kem,
    Role,
    Status,
)


@dataclass(frozen=True, slots=True)
class Mandate:
    categories: frozenset[str]
    legal_basis: str


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    community: str
    role: Role
    status: Status
    mandates: tuple[Mandate, ...]
    exercises: frozenset[str] = frozenset()
    #: The EU Member States it may request mutual assistance on behalf of (a national
    #: CSIRT or SOC its own; the CSIRTs network every one). The authority decides it.
    acts_for: frozenset[str] = frozenset()
    #: Every category its mandates cover (computed once: the policy asks per decision).
    categories: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        covered = frozenset().union(*(m.categories for m in self.mandates))
        object.__setattr__(self, "categories", covered)

    @property
    def is_jcu_participant(self) -> bool:
        return self.role != "member"

    @property
    def active(self) -> bool:
        return self.status == "active"

    def legal_basis_for(self, categories: frozenset[str] | set[str]) -> tuple[str, ...]:
        """Legal bases of the mandates that cover at least one of `categories`."""
        return tuple(m.legal_basis for m in self.mandates if m.categories & categories)

    def claim(self) -> str:
        """What an organisation claims about itself in a registration request, as canonical
        JSON: equal for equal facts however the YAML was written (status is not claimed:
        the authority decides it)."""
        mandates = sorted(
            (
                {"categories": sorted(m.categories), "legal_basis": m.legal_basis}
                for m in self.mandates
            ),
            key=lambda m: json.dumps(m, sort_keys=True),
        )
        return json.dumps(
            {
                "id": self.id,
                "name": self.name,
                "community": self.community,
                "role": self.role,
                "mandates": mandates,
                "exercises": sorted(self.exercises),
            },
            sort_keys=True,
            separators=(",", ":"),
        )


@dataclass(frozen=True, slots=True)
class Community:
    name: str
    kem: Kem


@dataclass(frozen=True, slots=True)
class Registry:
    communities: Mapping[str, Community]
    participants: Mapping[str, Participant]
    digest: str = field(default="")

    def get(self, participant_id: str) -> Participant:
        try:
            return self.participants[participant_id]
        except KeyError:
            known = ", ".join(sorted(self.participants))
            raise RegistryError(f"unknown participant {participant_id!r}; known: {known}") from None

    def __iter__(self) -> Iterator[Participant]:
        return iter(self.participants.values())

    def __contains__(self, participant_id: object) -> bool:
        return participant_id in self.participants

    def kem_of(self, participant_id: str) -> Kem:
        return self.communities[self.get(participant_id).community].kem

    def members_of(self, community: str) -> tuple[Participant, ...]:
        return tuple(p for p in self if p.community == community)


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise RegistryError(f"{where}: {message}")


def parse_registry(data: Any, source: str = "<registry>") -> Registry:
    """Validate a registry document (the parsed YAML) and build a `Registry`."""
    _require(isinstance(data, dict), source, "top level must be a mapping")
    _require(data.get("version") == 1, source, "unsupported or missing 'version' (expected 1)")
    raw_comms = data.get("communities") or {}
    _require(isinstance(raw_comms, dict), source, "'communities' must be a mapping")
    communities: dict[str, Community] = {}
    for name in COMMUNITIES:
        spec = raw_comms.get(name) or {}
        kem = spec.get("kem", "x25519")
        _require(kem in KEMS, f"{source}: community {name}", f"kem must be one of {KEMS}")
        communities[name] = Community(name=name, kem=cast(Kem, kem))
    unknown = set(raw_comms) - set(COMMUNITIES)
    _require(not unknown, source, f"unknown communities {sorted(unknown)}")

    participants: dict[str, Participant] = {}
    raw_parts = data.get("participants")
    _require(
        isinstance(raw_parts, list) and bool(raw_parts),
        source,
        "'participants' must be a non-empty list",
    )
    for i, entry in enumerate(raw_parts):
        where = f"{source}: participants[{i}]"
        _require(isinstance(entry, dict), where, "must be a mapping")
        pid = entry.get("id")
        _require(isinstance(pid, str) and bool(pid), where, "needs an 'id'")
        where = f"{source}: participant {pid}"
        _require(pid not in participants, where, "duplicate id")
        _require(
            entry.get("community") in COMMUNITIES, where, f"community must be one of {COMMUNITIES}"
        )
        _require(entry.get("role") in ROLES, where, f"role must be one of {ROLES}")
        status = entry.get("status", "active")
        _require(status in STATUSES, where, f"status must be one of {STATUSES}")
        mandates = []
        for m in entry.get("mandates") or []:
            cats = m.get("categories") or []
            bad = set(cats) - set(CATEGORIES)
            _require(not bad, where, f"unknown categories {sorted(bad)}")
            basis = m.get("legal_basis")
            _require(
                isinstance(basis, str) and bool(basis), where, "each mandate needs a legal_basis"
            )
            mandates.append(Mandate(categories=frozenset(cats), legal_basis=basis))
        acts_for = entry.get("acts_for") or []
        _require(
            isinstance(acts_for, list) and all(isinstance(m, str) for m in acts_for),
            where,
            "'acts_for' must be a list of Member State codes (or \"*\" for every one)",
        )
        states = frozenset(EU_MEMBER_STATES) if "*" in acts_for else frozenset(acts_for)
        foreign = sorted(states - set(EU_MEMBER_STATES))
        _require(not foreign, where, f"'acts_for' names what is not an EU Member State: {foreign}")
        participants[pid] = Participant(
            id=pid,
            name=str(entry.get("name") or pid),
            community=entry["community"],
            role=entry["role"],
            status=status,
            mandates=tuple(mandates),
            exercises=frozenset(entry.get("exercises") or ()),
            acts_for=states,
        )
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return Registry(communities=communities, participants=participants, digest=digest)


def load_registry(path: Path) -> Registry:
    """Load and validate `participants.yaml`; every problem is a `RegistryError`."""
    import yaml  # the authority's source file only: a node reads the signed snapshot

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"registry file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    return parse_registry(data, source=str(path))
