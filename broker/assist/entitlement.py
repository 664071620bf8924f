"""Who may ask for mutual assistance, and who may offer it: registry facts only.

- **Requesting on behalf of a Member State**: an active organisation whose
  registry entry lists that Member State in `acts_for` (decided by the
  registry authority, signed into every snapshot): a national CSIRT or SOC for
  its own Member State, the CSIRTs network for any (NIS 2, Art. 15: it
  facilitates mutual assistance between the national CSIRTs).
- **Offering**: an active operational participant (the Recommendation's
  operational participants mobilise resources), whose mandate covers one of
  the categories of each need it answers.

The facts are those of the node's accepted registry snapshot (`ctx.registry`),
never a file of the node's own.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.assist.steps import Need
from broker.errors import NoMandate, NotEntitled, RegistryError
from broker.trust.registry import Participant, Registry
from broker.vocabulary import EU_MEMBER_STATES


def participant(registry: Registry, pid: str) -> Participant:
    """`pid`'s registry facts; NotEntitled (a refusal, not a crash) if the registry lacks it."""
    try:
        return registry.get(pid)
    except RegistryError:
        raise NotEntitled(f"{pid} is not in the registry snapshot this node accepted") from None


def check_may_request(registry: Registry, requester: str, member_states: Iterable[str]) -> None:
    """Raise `NotEntitled` unless `requester` acts for every one of `member_states`."""
    who = participant(registry, requester)
    states = sorted(set(member_states))
    if who.status != "active":
        raise NotEntitled(f"{requester} is {who.status}; it may not request assistance")
    missing = [m for m in states if m not in who.acts_for]
    if missing:
        acts = ", ".join(sorted(who.acts_for)) or "no Member State"
        raise NotEntitled(
            f"{requester} acts for {acts} in the registry, so it may not request assistance on "
            f"behalf of {', '.join(missing)} (a Member State's CSIRT asks for its own; the CSIRTs "
            "network for any)"
        )


def need_categories(need: Need, request_categories: Iterable[str]) -> frozenset[str]:
    """The categories a need is about: its own, else the request's."""
    return frozenset(need.categories) or frozenset(request_categories)


def uncovered(
    who: Participant, needs: Iterable[Need], request_categories: Iterable[str]
) -> list[tuple[Need, frozenset[str]]]:
    """The needs whose categories `who`'s mandate covers none of, with those categories."""
    cats = frozenset(request_categories)
    return [
        (n, need_categories(n, cats))
        for n in needs
        if not who.categories & need_categories(n, cats)
    ]


def check_may_offer(
    registry: Registry, offerer: str, needs: Iterable[Need], request_categories: Iterable[str]
) -> None:
    """Raise `NoMandate` unless `offerer` is an active operational participant whose mandate
    covers one category of each of `needs`."""
    who = participant(registry, offerer)
    if who.role != "operational":
        raise NoMandate(
            f"only operational participants offer mutual assistance; {offerer} is a {who.role}"
        )
    if who.status != "active":
        raise NoMandate(f"{offerer} is {who.status}; it may not offer assistance")
    gaps = uncovered(who, needs, request_categories)
    if gaps:
        words = "; ".join(
            f"need {n.id} ({n.kind.lower().replace('_', ' ')}) is about {', '.join(sorted(c))}"
            for n, c in gaps
        )
        covered = ", ".join(sorted(who.categories)) or "nothing"
        raise NoMandate(f"{offerer}'s mandate covers {covered}, not what it would answer: {words}")


def check_member_states(member_states: Iterable[str]) -> tuple[str, ...]:
    """The codes, sorted, if each is an EU Member State (ValueError naming the others)."""
    states = tuple(sorted(set(member_states)))
    bad = [m for m in states if m not in EU_MEMBER_STATES]
    if bad:
        raise ValueError(f"not EU Member States (ISO 3166-1 alpha-2, GR for Greece): {bad}")
    return states
