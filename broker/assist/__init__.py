"""Mutual assistance and the capability inventory (issue 18, docs/assistance.md).

    async with AssistDesk(ctx, "soc-fr") as desk:          # a node's desk
        sent = await desk.request(RequestDraft(...))        # on behalf of FR
    async with AssistDesk(ctx, "cert-eu") as desk:
        await desk.sync()                                   # what arrived
        await desk.offer(sent.case_id, OfferDraft(...))

The state machine (`machine.advance`) is checked by both enforcement points
of every node through the workflow hook of `broker.pep`; the case book keeps
each node's view; the inventory lives on `jcu.capabilities`.
"""

from broker.assist.book import CaseBook, CaseSummary, CaseView, StepEntry
from broker.assist.check import WORKFLOW, AssistCheck, assist_workflows
from broker.assist.desk import AssistDesk, OfferDraft, RequestDraft, Sent, desk_group
from broker.assist.inventory import (
    CapabilityEntry,
    CapabilityPublisher,
    InventoryView,
    Listed,
    Published,
    read_inventory,
)
from broker.assist.machine import STATES, Case, State, advance, recipients_for
from broker.assist.matching import Match, rank
from broker.assist.steps import Contact, Need, Request
from broker.pep.context import PepContext


def read_cases(ctx: PepContext, *, open_only: bool = True) -> list[CaseSummary]:
    """The assistance cases this node knows and their state, as its case book holds them
    (what arrived up to the last sync of any of its channels): the board a console shows."""
    book = CaseBook.of_node(ctx.settings.home, ctx.envelope.store, ctx.identity)
    try:
        return book.summaries(ctx.registry, open_only=open_only)
    finally:
        book.close()


__all__ = [
    "STATES",
    "WORKFLOW",
    "AssistCheck",
    "AssistDesk",
    "CapabilityEntry",
    "CapabilityPublisher",
    "Case",
    "CaseBook",
    "CaseSummary",
    "CaseView",
    "Contact",
    "InventoryView",
    "Listed",
    "Match",
    "Need",
    "OfferDraft",
    "Published",
    "Request",
    "RequestDraft",
    "Sent",
    "State",
    "StepEntry",
    "advance",
    "assist_workflows",
    "desk_group",
    "rank",
    "read_cases",
    "read_inventory",
    "recipients_for",
]
