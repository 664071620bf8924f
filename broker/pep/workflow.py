"""Workflows at the enforcement points: conversations whose steps a state machine orders.

A payload type whose schema names a workflow (`"jcu.workflow"`, with the field
naming its thread in `"jcu.thread"`: the mutual-assistance request and its
steps) is one message of a conversation. The enforcement points treat such
messages alike whatever the workflow:

- on Kafka they are keyed by their thread, so that every message of one
  conversation lands on one partition of a topic, in the order it was sent, and
  a receiver meets them in that order (the key must equal the thread the signed
  payload names, as a retraction's key must name what it retracts);
- the audit leaf carries the thread, so a conversation's story is found in the
  log without its content (`jcu audit explain`);
- the publisher asks the workflow's `WorkflowCheck` before it sends a step and
  tells it once the step is on Kafka; the subscriber asks it, after the
  signature, the decryption and the policy, before it delivers one. A refusal
  is a `Rejected` error: audited, dead-lettered on the receiving side.

The enforcement points know nothing of any workflow's rules, and fail closed:
a workflow's message with no check registered for it is never sent or
delivered unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from broker.envelope.labels import Labels


@dataclass(frozen=True, slots=True)
class WorkflowMessage:
    """One message of a workflow as an enforcement point sees it (sent or opened)."""

    workflow: str
    thread: str
    message_id: str
    sender: str
    #: The short Avro name (AssistanceOffer...).
    payload_type: str
    record: Mapping[str, Any]
    labels: Labels
    #: Asked before sending: the recipients the sender names (none: the policy decides).
    #: Told once sent, and asked on receipt: whom it was sealed for.
    recipients: tuple[str, ...]
    created: datetime


class WorkflowCheck(Protocol):
    """What a workflow asks of the enforcement points of one node."""

    def outbound(self, message: WorkflowMessage) -> None:
        """Raise a `Rejected` error if this node may not send `message` now."""
        ...

    def sent(self, message: WorkflowMessage) -> None:
        """`message` is on Kafka: take it into the node's view of its thread."""
        ...

    def inbound(self, message: WorkflowMessage) -> None:
        """Raise a `Rejected` error if `message` may not be delivered; else take it into the
        node's view of its thread. Asked again for a message redelivered after a crash,
        or delivered to another consumer group: the same message gets the same answer."""
        ...


Workflows = Mapping[str, WorkflowCheck]
