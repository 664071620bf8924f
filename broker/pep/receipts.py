"""Delivery receipts: one signed receipt per receiver, sender and consumer batch.

A receiver acknowledges what it took of one sender in one consumer batch with
one Receipt: each message's outcome (received when, status, reason) and the
RFC 6962 Merkle root over the sorted message ids, sealed to the sender alone
on the sender's community's `receipts` stream and verified like any envelope.
The ids travel in the receipt, so the sender answers per message without
asking for proofs. Receipts of the first form (one per delivery, schemas/
legacy/Receipt.v1.avsc) still read.

On read, a receipt is refused, with its reason, when it does not open (forged,
damaged), speaks for another receiver than its signer, lists ids that do not
hash to its root, or names a message the sender's sent index says the receiver
was never sent (an index that does not know the message, from another host or
pruned, cannot say: such entries count). A batch delivered again after a crash
may be acknowledged again: receipts are folded per (message, receiver), so a
re-run never shows two deliveries.

`recipient_statuses` puts them beside what the sender's own index says it
decided (broker.pep.sent): per organisation, delivered (when), rejected (why),
pending (no receipt yet), denied (by which rules), and whether it was retracted.
The node's keys are unlocked first: a wrong passphrase is an error, never an
empty list.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from broker import merkle
from broker.clock import utc_now
from broker.envelope import MemoryReplayGuard, read_header
from broker.errors import (
    ReceiptNotSent,
    ReceiptRootMismatch,
    ReceiptWrongSigner,
    Rejected,
)
from broker.kafka.scan import scan
from broker.kafka.stamps import appended_at
from broker.kafka.topics import community_topic
from broker.pep.context import PepContext
from broker.pep.sent import SentLog, SentMessage

#: Namespace of receipt ids: the same receiver and message ids give the same receipt id,
#: whatever the re-runs (the first form's id was per (message, receiver) in it too).
_RECEIPT_IDS = uuid.UUID("6f1d2c1e-5b7a-4d8e-9a51-3c0f2b7e8d14")

#: What the sender's sent index says of a message id (None: it does not know it).
SentLookup = Callable[[str], SentMessage | None]


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


@dataclass(frozen=True, slots=True)
class RefusedReceipt:
    """A receipt record that proves nothing, and why (a `Rejected` reason code)."""

    where: str  # topic[partition]@offset
    signer: str  # as the envelope claims it ("" when even its header does not read)
    reason: str
    detail: str

    def line(self) -> str:
        by = f" signed by {self.signer}" if self.signer else ""
        return f"receipt {self.where}{by} refused ({self.reason}): {self.detail}"


@dataclass(frozen=True, slots=True)
class ReceiptsRead:
    """What a sender's receipts say, verified and checked."""

    #: Per (message, receiver), oldest first: what `jcu receipts` shows.
    views: tuple[ReceiptView, ...]
    #: Every per-message acknowledgement as signed, before folding (a batch delivered
    #: again after a crash, and acknowledged again, is here twice).
    signed: tuple[ReceiptView, ...]
    refused: tuple[RefusedReceipt, ...]


def receipt_root(message_ids: Iterable[str]) -> bytes:
    """RFC 6962 Merkle Tree Hash over leaf_hash(id, UTF-8) of the ids, sorted."""
    return merkle.root([merkle.leaf_hash(m.encode()) for m in sorted(message_ids)])


def batch_receipt(receiver: str, delivered: Sequence[tuple[str, datetime]]) -> dict[str, Any]:
    """The Receipt record for (message id, received) pairs `receiver` took of one sender in
    one consumer batch, each acknowledged once, DELIVERED."""
    first: dict[str, datetime] = {}
    for message_id, when in delivered:
        first.setdefault(message_id, when)
    root = receipt_root(first)
    return {
        # The same id however often a crash makes the same batch's receipt go again.
        "id": str(uuid.uuid5(_RECEIPT_IDS, f"{receiver}/{root.hex()}")),
        "receiver": receiver,
        "root": root,
        "entries": [
            {"message_id": m, "received": first[m], "status": "DELIVERED", "reason": None}
            for m in sorted(first)
        ],
    }


def check_receipt(record: Mapping[str, Any], signer: str, sent: SentLookup) -> list[ReceiptView]:
    """The per-message acknowledgements of one opened Receipt (either form) signed by
    `signer`; a ReceiptRefused subclass if it cannot be believed."""
    receiver = str(record["receiver"])
    if receiver != signer:
        raise ReceiptWrongSigner(f"it speaks for {receiver} but {signer} signed it")
    if "entries" in record:
        entries: Sequence[Mapping[str, Any]] = record["entries"]
        ids = [str(e["message_id"]) for e in entries]
        if receipt_root(ids) != bytes(record["root"]):
            raise ReceiptRootMismatch(
                f"its {len(ids)} message ids do not hash to the Merkle root it signs"
            )
    else:  # the first form: one message
        entries = [record]
    views = [
        ReceiptView(
            message_id=str(e["message_id"]),
            receiver=receiver,
            received=e["received"],
            status=e["status"],
            reason=e.get("reason"),
            verified_sender=signer,
        )
        for e in entries
    ]
    for view in views:
        known = sent(view.message_id)
        if known is not None and receiver not in known.recipients:
            raise ReceiptNotSent(
                f"it names message {view.message_id}, which was never sent to {receiver}"
            )
    return views


def fold(views: Iterable[ReceiptView]) -> list[ReceiptView]:
    """One view per (message, receiver), oldest first: the first delivery stays the
    delivery (a re-delivered batch acknowledged again is not a second one); otherwise the
    latest receipt counts (a rejection later delivered by a replay, say)."""
    kept: dict[tuple[str, str], ReceiptView] = {}
    for view in sorted(views, key=lambda v: v.received):
        key = (view.message_id, view.receiver)
        had = kept.get(key)
        if had is not None and had.status == "DELIVERED" and view.status == "DELIVERED":
            continue
        kept[key] = view
    return sorted(kept.values(), key=lambda v: v.received)


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


def sent_index(ctx: PepContext, participant: str) -> SentLog:
    """The participant's sent index on this node (its publisher writes it)."""
    return SentLog(sent_index_path(ctx.settings.home, participant), point=f"{participant}/publish")


def sent_index_path(home: Path, participant: str) -> Path:
    return home / "sent" / f"{participant}.sqlite"


async def read_receipts(
    ctx: PepContext, participant: str, message_id: str | None = None
) -> list[ReceiptView]:
    """Every receipt addressed to `participant` (optionally for one message), one per
    (message, receiver), oldest first; refused ones left out (`receipts_of` says which)."""
    return list((await receipts_of(ctx, participant, message_id)).views)


async def receipts_of(
    ctx: PepContext,
    participant: str,
    message_id: str | None = None,
    *,
    sent: SentLog | None = None,
) -> ReceiptsRead:
    """Every receipt addressed to `participant` (optionally: those naming one message),
    opened and checked against `sent` (default: the participant's sent index here)."""
    unlock(ctx, participant)
    me = ctx.registry.get(participant)
    topics = [community_topic(me.community, "receipts")]
    if me.exercises:  # exercise traffic, and its receipts, only for those who take part
        topics.append(community_topic(me.community, "receipts", exercise=True))
    opener = ctx.envelope.opener(participant, replay_guard=MemoryReplayGuard())
    index = sent if sent is not None else sent_index(ctx, participant)
    signed: list[ReceiptView] = []
    refused: list[RefusedReceipt] = []
    try:
        async for r in scan(ctx.settings.kafka, topics):
            _read(ctx, opener, participant, r, message_id, index.get, signed, refused)
    finally:
        if sent is None:
            index.close()
    return ReceiptsRead(tuple(fold(signed)), tuple(signed), tuple(refused))


def _read(
    ctx: PepContext,
    opener: Any,
    participant: str,
    r: Any,
    message_id: str | None,
    sent: SentLookup,
    signed: list[ReceiptView],
    refused: list[RefusedReceipt],
) -> None:
    where = f"{r.topic}[{r.partition}]@{r.offset}"
    signer = ""
    try:
        header = read_header(ctx.envelope.store, r.value or b"")
        if participant not in header.recipient_ids:
            return  # another sender's receipt on the community's topic
        signer = header.sender
        opened = opener.open(r.value, topic=r.topic, appended=appended_at(r))
        rec = opened.record
        if message_id is not None and message_id not in _named(rec):
            return
        views = check_receipt(rec, opened.sender, sent)
    except Rejected as exc:  # a forged, damaged or lying receipt proves nothing
        refused.append(RefusedReceipt(where, signer, exc.reason, str(exc)))
        return
    signed.extend(v for v in views if message_id is None or v.message_id == message_id)


def _named(record: Mapping[str, Any]) -> set[str]:
    if "entries" in record:
        return {str(e["message_id"]) for e in record["entries"]}
    return {str(record["message_id"])}
