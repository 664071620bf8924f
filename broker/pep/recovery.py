"""What a restarted publisher does about messages it decided but may not have sent.

The publisher notes each message as pending (its sent index) before it audits
the decisions, notes it again before handing its copies to Kafka and where
Kafka took each one, and settles it once the send outcome is audited. A crash
in between leaves it pending. On the next start, for each pending message: if
its decisions are not in the audit log (its journal, read back without
reading the audit topic, which an organisation may not), nothing was decided
or sent, and it is forgotten; otherwise the outcome is audited: sent where
the index noted where Kafka took it; not sent (`publisher-stopped`) if it was
never handed to Kafka; and for a crash while Kafka was taking it, each copy
is looked for on its topic where this organisation may read it (its own
community's), and is `unconfirmed` where it may not (its recipients'
receiving logs say whether it arrived). So the log never shows an "allow"
that went nowhere without saying so.
"""

from __future__ import annotations

from typing import Any

from broker.audit import AuditLog, AuditMark
from broker.audit.acts import PUBLISHER_STOPPED, UNCONFIRMED, CopyOutcome, SendOutcome
from broker.envelope import read_header
from broker.errors import JcuError, KafkaForbidden
from broker.kafka.clients import consumer as new_consumer
from broker.kafka.clients import start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import partitions
from broker.logs import get_logger
from broker.pep.sent import SentCopy, SentLog, SentMessage
from broker.schemas import SchemaStore

#: The publisher's hold on its audit log (`AuditLog.hold`): its sent index's mark.
SENT_HOLD = "sent index"
#: How far before a message was begun its copies are looked for (clock skew with the broker).
LOOK_BEHIND_MS = 5 * 60 * 1000
_log = get_logger(__name__)


async def find_copies(
    kafka: KafkaConnection,
    store: SchemaStore,
    sender: str,
    message: SentMessage,
    since_ms: int,
) -> tuple[dict[tuple[str, frozenset[str]], tuple[int, int]], set[str]]:
    """(topic, recipients) -> (partition, offset) of the copies of `message` on Kafka, and
    the topics this principal may not read (another community's: not looked at).

    Every partition of each topic is read from shortly before the message was
    begun: a message is keyed by its id or, a workflow's, by its thread, and the
    sent index keeps neither key; the signed header says whose copy it is."""
    from aiokafka import TopicPartition

    found: dict[tuple[str, frozenset[str]], tuple[int, int]] = {}
    unreadable: set[str] = set()
    consumer: Any = new_consumer(kafka, group_id=None, isolation_level="read_committed")
    await start_client(consumer, kafka)
    try:
        for topic in sorted({c.topic for c in message.copies}):
            try:
                tps = await partitions(consumer, [topic])
            except KafkaForbidden:
                unreadable.add(topic)
                continue
            for tp in tps:
                tp = TopicPartition(tp.topic, tp.partition)
                consumer.assign([tp])
                since = max(since_ms - LOOK_BEHIND_MS, 0)
                try:
                    start = (await consumer.offsets_for_times({tp: since}))[tp]
                except KafkaForbidden:
                    unreadable.add(topic)
                    break
                if start is None:
                    continue  # nothing appended since: not there
                end = (await consumer.end_offsets([tp]))[tp]
                consumer.seek(tp, start.offset)
                while await consumer.position(tp) < end:
                    batch = await consumer.getmany(tp, timeout_ms=1000)
                    for r in batch.get(tp, []):
                        if r.offset >= end:
                            continue
                        try:
                            header = read_header(store, r.value or b"")
                        except JcuError:
                            continue
                        if header.sender == sender and header.message_id == message.message_id:
                            recipients = frozenset(header.recipient_ids)
                            found.setdefault((topic, recipients), (r.partition, r.offset))
    finally:
        await consumer.stop()
    return found, unreadable


async def settle_pending(
    sender: str,
    kafka: KafkaConnection,
    store: SchemaStore,
    audit: AuditLog,
    sent: SentLog,
) -> list[CopyOutcome]:
    """Audit the outcome of every message a crash left pending; returns the copies settled."""
    pending = sent.pending()
    if not pending:
        return []
    leaves = await audit.leaves_since(sent.audit_mark() or AuditMark(0, 0))
    decided = {leaf.record.message_id for leaf in leaves if leaf.record.action == "publish"}
    settled = {leaf.record.message_id for leaf in leaves if leaf.record.action == "send"}
    records: list[SendOutcome] = []
    outcomes: list[CopyOutcome] = []
    found_messages = []
    for message, created_ms in pending:
        mid = message.message_id
        if mid not in decided and mid not in settled:
            continue  # its decisions were never recorded: nothing was sent
        found = sent.produced_of(mid)
        unreadable: set[str] = set()
        producing = sent.was_producing(mid)
        if producing and any(
            (c.topic, frozenset(c.recipients)) not in found for c in message.copies
        ):
            looked, unreadable = await find_copies(kafka, store, sender, message, created_ms)
            found = {**looked, **found}
        copies = []
        for c in message.copies:
            where = found.get((c.topic, frozenset(c.recipients)))
            unknown = where is None and producing and c.topic in unreadable
            if where is not None:
                error, reason = None, "sent: Kafka took it before the publisher stopped"
            elif unknown:
                error, reason = (
                    UNCONFIRMED,
                    (
                        f"the publisher stopped while Kafka was taking it, and may not read "
                        f"{c.topic} to look: its recipients' receiving logs say whether it arrived"
                    ),
                )
            else:
                error, reason = (
                    PUBLISHER_STOPPED,
                    (
                        "the publisher stopped after recording its decisions and before "
                        "sending it; it was never sent"
                    ),
                )
            copies.append(
                CopyOutcome(
                    c.community,
                    c.topic,
                    c.recipients,
                    partition=where[0] if where else None,
                    offset=where[1] if where else None,
                    error=error,
                    reason=reason,
                    redacted_fields=c.redacted_fields,
                )
            )
        outcomes += copies
        if mid not in settled:
            records.append(SendOutcome(mid, tuple(copies)))
        kept = tuple(
            SentCopy(c.community, c.topic, c.recipients, c.redacted_fields)
            for c, o in zip(message.copies, copies, strict=True)
            if o.sent
        )
        if kept:
            found_messages.append(
                SentMessage(
                    mid, message.sender, message.payload_type, message.labels, kept, message.source
                )
            )
    if records:
        await audit.append_sets(records)
    sent.add_many(found_messages, settled=[m.message_id for m, _ in pending], mark=audit.mark())
    audit.release(SENT_HOLD)  # nothing pending any more: nothing to read back
    _log.warning(
        "publisher recovered messages left pending by a stop",
        participant=sender,
        pending=len(pending),
        outcomes_recorded=len(records),
        copies_found=sum(1 for o in outcomes if o.sent),
        copies_not_sent=sum(1 for o in outcomes if not o.sent),
    )
    return outcomes
