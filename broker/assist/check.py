"""The assistance workflow's check at a node's enforcement points (`broker.pep.workflow`).

The publisher asks `outbound` before it sends a step (the sender's own node
refuses what the state machine does not allow, and the refusal is audited),
and tells `sent` once the step is on Kafka; the subscriber asks `inbound`
before it delivers one (a refusal is dead-lettered and audited). Both run the
state machine on the node's case book with the registry facts of the
snapshot the node accepted.
"""

from __future__ import annotations

from collections.abc import Callable

from broker.assist.book import CaseBook
from broker.errors import Rejected
from broker.logs import get_logger
from broker.pep.workflow import WorkflowMessage
from broker.trust.registry import Registry

#: The workflow name the assistance schemas declare (`"jcu.workflow": "assistance"`).
WORKFLOW = "assistance"
_log = get_logger(__name__)


class AssistCheck:
    """`WorkflowCheck` of the assistance workflow, over one node's case book."""

    def __init__(self, book: CaseBook, registry: Callable[[], Registry]) -> None:
        self._book = book
        self._registry = registry

    def outbound(self, message: WorkflowMessage) -> None:
        self._book.check(
            message.payload_type,
            dict(message.record),
            sender=message.sender,
            message_id=message.message_id,
            labels=message.labels,
            recipients=message.recipients,
            registry=self._registry(),
        )

    def sent(self, message: WorkflowMessage) -> None:
        try:
            self._take(message, own=True)
        except Rejected as exc:
            # Sent already: a step that arrived between the check and the send made it
            # out of order. The book keeps the refusal; the receivers will refuse it too.
            _log.warning(
                "assistance step sent but no longer in order",
                message_id=message.message_id,
                thread=message.thread,
                reason=exc.reason,
            )

    def inbound(self, message: WorkflowMessage) -> None:
        self._take(message, own=False)

    def _take(self, message: WorkflowMessage, *, own: bool) -> None:
        self._book.take(
            message.payload_type,
            dict(message.record),
            sender=message.sender,
            message_id=message.message_id,
            labels=message.labels,
            recipients=message.recipients,
            created=message.created,
            registry=self._registry(),
            own=own,
        )


def assist_workflows(book: CaseBook, registry: Callable[[], Registry]) -> dict[str, AssistCheck]:
    """The workflows map the enforcement points of a node take (`workflows=`)."""
    return {WORKFLOW: AssistCheck(book, registry)}
