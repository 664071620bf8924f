"""Reading delivery receipts: who received a message, and when.

Receipts are sealed to the original sender on its community's `receipts`
stream, so only the sender can read them; each is verified like any envelope.
`recipient_statuses` puts them beside what the sender's own index says it
decided (broker.pep.sent): per organisation, delivered (when), rejected (why),
pending (no receipt yet), denied (by which rules), and whether it was retracted.
The node's keys are unlocked first: a wrong passphrase is an error, never an
empty list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from broker.clock import utc_now
from broker.envelope import MemoryReplayGuard, read_header
from broker.errors import Rejected
from broker.kafka.scan import scan
from broker.kafka.stamps import appended_at
from broker.kafka.topics import community_topic
from broker.pep.context import PepContext
from broker.pep.sent import SentMessage


@dataclass(frozen=True, slots=True)
class ReceiptView:
    message_id: str
    receiver: str
    received: datetime
    status: str
    reason: str | None
    verified_sender: str

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "receiver": self.receiver,
            "received": self.received.isoformat(),
            "status": self.status,
            "reason": self.reason,
        }


RecipientState = Literal["delivered", "rejected", "pending", "denied", "not decided"]


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """What became of one message for one organisation, as its sender knows it."""

    org: str
    state: RecipientState
    decided: str  # "allow", "deny" or "" (a receipt from an organisation not in the index)
    received: datetime | None = None
    detail: str = ""  # rejection reason, or the denying rules
    retracted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "state": self.state,
            "decided": self.decided or None,
            "received": self.received.isoformat() if self.received else None,
            "detail": self.detail or None,
            "retracted": self.retracted,
        }


def recipient_statuses(
    sent: SentMessage | None, receipts: Sequence[ReceiptView]
) -> list[RecipientStatus]:
    """Per organisation: what the sender decided for it and what its receipt says; the
    latest receipt of an organisation counts. Without the sent index's entry (another
    host, or pruned), the receipts alone."""
    latest: dict[str, ReceiptView] = {}
    for view in sorted(receipts, key=lambda v: v.received):
        latest[view.receiver] = view
    retracted = sent is not None and sent.retracted
    out: list[RecipientStatus] = []
    allowed = sorted(sent.recipients) if sent is not None else []
    for org in allowed:
        got = latest.pop(org, None)
        if got is None:
            out.append(RecipientStatus(org, "pending", "allow", retracted=retracted))
        elif got.status == "DELIVERED":
            out.append(
                RecipientStatus(org, "delivered", "allow", got.received, retracted=retracted)
            )
        else:
            out.append(
                RecipientStatus(org, "rejected", "allow", got.received, got.reason or "", retracted)
            )
    for org, rules in sorted(sent.denied if sent is not None else ()):
        out.append(RecipientStatus(org, "denied", "deny", detail=", ".join(rules)))
    for org, view in sorted(latest.items()):
        state: RecipientState = "delivered" if view.status == "DELIVERED" else "rejected"
        out.append(RecipientStatus(org, state, "", view.received, view.reason or ""))
    return out


def unlock(ctx: PepContext, participant: str) -> None:
    """Open the node's current signing key: KeystoreError (one line) on a wrong passphrase,
    instead of receipts that silently fail to open."""
    keyring = ctx.envelope.keyring
    kid = keyring.current_signing_key_id(participant, utc_now())
    ctx.envelope.keystore.signing_key(participant, kid)


async def read_receipts(
    ctx: PepContext, participant: str, message_id: str | None = None
) -> list[ReceiptView]:
    """Every receipt addressed to `participant` (optionally for one message), oldest first."""
    unlock(ctx, participant)
    me = ctx.registry.get(participant)
    topics = [community_topic(me.community, "receipts")]
    if me.exercises:  # exercise traffic, and its receipts, only for those who take part
        topics.append(community_topic(me.community, "receipts", exercise=True))
    opener = ctx.envelope.opener(participant, replay_guard=MemoryReplayGuard())
    out: list[ReceiptView] = []
    async for r in scan(ctx.settings.kafka, topics):
        view = _open(ctx, opener, participant, r, message_id)
        if view is not None:
            out.append(view)
    return sorted(out, key=lambda v: v.received)


def _open(
    ctx: PepContext, opener: Any, participant: str, r: Any, message_id: str | None
) -> ReceiptView | None:
    try:
        header = read_header(ctx.envelope.store, r.value or b"")
        if participant not in header.recipient_ids:
            return None
        opened = opener.open(r.value, topic=r.topic, appended=appended_at(r))
    except Rejected:
        return None  # a forged or damaged receipt proves nothing; the DLQ is the receiver's
    rec = opened.record
    if message_id is not None and str(rec["message_id"]) != message_id:
        return None
    if rec["receiver"] != opened.sender:
        return None  # a receipt speaks only for its signer
    return ReceiptView(
        message_id=str(rec["message_id"]),
        receiver=rec["receiver"],
        received=rec["received"],
        status=rec["status"],
        reason=rec.get("reason"),
        verified_sender=opened.sender,
    )
