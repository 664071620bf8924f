"""Reading delivery receipts: who received a message, and when.

Receipts are sealed to the original sender on its community's `receipts`
stream, so only the sender can read them; each is verified like any envelope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker.envelope import MemoryReplayGuard, read_header
from broker.errors import Rejected
from broker.kafka.scan import scan
from broker.kafka.stamps import appended_at
from broker.kafka.topics import community_topic
from broker.pep.context import PepContext


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


async def read_receipts(
    ctx: PepContext, participant: str, message_id: str | None = None
) -> list[ReceiptView]:
    """Every receipt addressed to `participant` (optionally for one message), oldest first."""
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
