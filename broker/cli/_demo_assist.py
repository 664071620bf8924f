"""The demo's mutual-assistance episode, during its crisis (part of `jcu demo`).

Two participants list capabilities in the inventory; the French national SOC
asks for help on behalf of France about the incident under crisis (so the
request is flagged and, being AMBER, reaches every operational participant);
it ranks the inventory against its needs; three participants offer, one
without the mandate for what it offers is refused by its own node; the SOC
accepts two offers and CERT-EU's team reports itself deployed. Each
organisation acts from its own node, through its own desk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from broker.assist import (
    AssistDesk,
    CapabilityEntry,
    CapabilityPublisher,
    Need,
    OfferDraft,
    RequestDraft,
    Sent,
    rank,
    read_inventory,
)
from broker.assist.book import CaseSummary
from broker.cli._output import table
from broker.clock import utc_now
from broker.errors import Rejected
from broker.pep import PublishResult
from broker.pep.context import PepContext


@dataclass
class Episode:
    """What happened, for the demo's summary."""

    incident: str
    rows: list[list[str]] = field(default_factory=list)
    #: The publications (decisions included) each step made, for "who received what".
    published: list[tuple[str, str, PublishResult]] = field(default_factory=list)
    matches: list[list[str]] = field(default_factory=list)
    board: CaseSummary | None = None


def _entry(owner: str, basis: str, **fields: Any) -> CapabilityEntry:
    return CapabilityEntry(owner=owner, legal_basis=basis, updated=utc_now(), **fields)


async def assistance_episode(node: Callable[[str], PepContext], incident: str) -> Episode:
    """Run the episode; `node(org)` is that organisation's own node."""
    episode = Episode(incident)
    inventory = {
        "cert-eu": (
            _entry(
                "cert-eu",
                "Regulation (EU, Euratom) 2023/2841, Art. 13",
                id="ir-onsite",
                kind="INCIDENT_RESPONSE",
                title="CERT-EU on-site incident response team",
                skills=("ransomware", "windows", "vpn"),
                languages=("en", "fr"),
                capacity=3,
                deployment="ON_SITE",
                notice_hours=12,
                categories=("malicious-code", "intrusions"),
            ),
            "AMBER",
        ),
        "enisa": (
            _entry(
                "enisa",
                "Regulation (EU) 2019/881 (Cybersecurity Act), Art. 7",
                id="rrt-ddos",
                kind="RAPID_REACTION_TEAM",
                title="EU cybersecurity reserve: DDoS mitigation",
                skills=("ddos", "network"),
                languages=("en", "fr", "de"),
                capacity=2,
                deployment="REMOTE",
                notice_hours=4,
                categories=("availability",),
            ),
            "GREEN",  # shareable: members see it
        ),
    }
    for owner, (entry, tlp) in inventory.items():
        async with CapabilityPublisher(owner, node(owner)) as pub:
            (done,) = await pub.publish([(entry, tlp)])
        episode.rows.append(
            [
                f"capability {entry.key} (TLP:{tlp})",
                owner,
                f"{len(done.recipients)} organisations",
                "listed",
            ]
        )

    async with AssistDesk(node("soc-fr"), "soc-fr") as fr:
        asked = await fr.request(
            RequestDraft(
                member_states=("FR",),
                needs=(
                    Need(
                        "n1",
                        "INCIDENT_RESPONSE",
                        categories=("malicious-code",),
                        skills=("ransomware", "vpn"),
                        languages=("fr",),
                        people=2,
                        deployment="ON_SITE",
                        max_notice_hours=24,
                    ),
                    Need(
                        "n2",
                        "INCIDENT_RESPONSE",
                        categories=("availability",),
                        skills=("ddos",),
                        languages=("fr", "en"),
                        max_notice_hours=12,
                    ),
                ),
                description="Hospitals in FR encrypted, patient portals under DDoS: on-site "
                "incident response and DDoS mitigation needed within 24 h.",
                urgency="IMMEDIATE",
                tlp="AMBER",
                incident=incident,
            )
        )
        visible = await read_inventory(node("soc-fr"), "soc-fr")
        case = asked.case
        assert case is not None  # noqa: S101 - narrows for mypy: the demo asked a case
        ranked = rank(
            case.request,
            case.labels.categories,
            [x.entry for x in visible.listed()],
            node("soc-fr").registry,
            utc_now(),
        )
    _step(
        episode,
        asked,
        "soc-fr",
        "request for FR (AMBER, " + ("CRISIS)" if case.request.crisis else "no crisis)"),
    )
    for need, matches in ranked.items():
        for m in matches[:1]:
            episode.matches.append([need, m.entry.key, f"{m.score:.2f}", m.why()])

    offers: dict[str, Sent] = {}
    for org, draft in (
        (
            "cert-eu",
            OfferDraft(
                "INCIDENT_RESPONSE",
                12,
                needs=("n1",),
                capabilities=("ir-onsite",),
                people=2,
                deployment="ON_SITE",
                languages=("fr", "en"),
            ),
        ),
        (
            "europol-ec3",
            OfferDraft(
                "MALWARE_ANALYSIS",
                24,
                needs=("n1",),
                deployment="REMOTE",
                note="sample analysis and affiliate infrastructure",
            ),
        ),
        (
            "enisa",
            OfferDraft(
                "RAPID_REACTION_TEAM",
                4,
                needs=("n2",),
                capabilities=("rrt-ddos",),
                deployment="REMOTE",
                languages=("fr", "en"),
            ),
        ),
        ("eeas-intcen", OfferDraft("INCIDENT_RESPONSE", 24, needs=("n2",))),
    ):
        async with AssistDesk(node(org), org) as desk:
            await desk.sync()
            try:
                offers[org] = await desk.offer(asked.case_id, draft)
            except Rejected as exc:
                episode.rows.append(
                    [f"offer for {draft.needs[0]}", org, "-", f"refused ({exc.reason})"]
                )
                continue
        _step(episode, offers[org], org, f"offer for {', '.join(draft.needs)}")

    async with AssistDesk(node("soc-fr"), "soc-fr") as fr:
        await fr.sync()
        accepted = await fr.accept(
            asked.case_id,
            [offers["cert-eu"].message_id, offers["enisa"].message_id],
            note="Europol: thank you, kept in reserve",
        )
    _step(episode, accepted, "soc-fr", "acceptance of cert-eu and enisa")
    async with AssistDesk(node("cert-eu"), "cert-eu") as ce:
        await ce.sync()
        deployed = await ce.status(asked.case_id, "DEPLOYED", "two responders at hospital A")
    _step(episode, deployed, "cert-eu", "status: DEPLOYED")
    async with AssistDesk(node("soc-fr"), "soc-fr") as fr:
        await fr.sync()
        episode.board = fr.view(asked.case_id).summary("soc-fr")
    return episode


def _step(episode: Episode, sent: Sent, sender: str, label: str) -> None:
    if sent.result is not None:
        episode.published.append((label, sender, sent.result))
    state = sent.case.state if sent.case is not None else "?"
    to = (
        ", ".join(sent.recipients)
        if len(sent.recipients) <= 3
        else f"{len(sent.recipients)} organisations"
    )
    episode.rows.append([label, sender, to, state])


def report_assistance(out: Console, episode: Episode) -> None:
    """The episode in the demo's summary: the steps, the best matches, the board line."""
    out.print(
        table(
            f"mutual assistance during the crisis ({episode.incident})",
            ["step", "by", "to", "case state"],
            episode.rows,
        )
    )
    if episode.matches:
        out.print(
            table(
                "jcu assist match: the best capability per need, among the entries soc-fr "
                "(a member) may see: the shareable ones",
                ["need", "capability", "score", "why"],
                episode.matches,
            )
        )
    b = episode.board
    if b is not None:
        out.print(
            f"soc-fr's board: request {b.id[:8]} {b.state}{' CRISIS' if b.crisis else ''}, "
            f"{b.offers} offers, accepted {', '.join(b.accepted)}; "
            f"`jcu audit explain {b.id[:8]}` tells its story"
        )
