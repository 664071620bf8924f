"""The workflow checks every receiving channel of a node runs (`broker.pep.workflow`).

A subscriber without them refuses a workflow's messages (fail closed), so each verb that
receives (`jcu subscribe`, `jcu siena deliver`, the demo) opens the node's case book and
hands the subscriber the assistance workflow's check over it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from broker.assist import CaseBook, assist_workflows
from broker.pep.context import PepContext
from broker.pep.workflow import Workflows


@contextmanager
def node_workflows(ctx: PepContext, participant: str) -> Iterator[Workflows]:
    """The node's workflow checks, over its case book (closed on exit)."""
    book = CaseBook.of_node(ctx.settings.home, ctx.envelope.store, participant)
    try:
        yield assist_workflows(book, lambda: ctx.registry)
    finally:
        book.close()
