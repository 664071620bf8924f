"""What a restarted publisher does about messages it decided but may not have sent.

The publisher notes each message as pending (its sent index) before it audits
the decisions, and settles it once the send outcome is audited. A crash in
between leaves it pending. On the next start, for each pending message: if its
decisions never reached the audit log, nothing was decided or sent, and it is
forgotten; otherwise each planned copy is looked for on its topic (from
shortly before the message was begun), and
the outcome is audited: sent where it was found (topic, partition, offset),
not sent (`publisher-stopped`) where it was not. So the log never shows an
"allow" that went nowhere without saying so.
"""

from __future__ import annotations

from typing import Any

from broker.audit import AuditLog, AuditMark
from broker.audit.acts import PUBLISHER_STOPPED, CopyOutcome, SendOutcome
from broker.envelope import read_header
from broker.errors import JcuError
from broker.kafka.clients import start_client
from broker.logs import get_logger
from broker.pep.sent import SentCopy, SentLog, SentMessage
from broker.schemas import SchemaStore

#: How far before a message was begun its copies are looked for (clock skew with the broker).
LOOK_BEHIND_MS = 5 * 60 * 1000
_log = get_logger(__name__)


async def find_copies(
    bootstrap: str, store: SchemaStore, sender: str, message: SentMessage, since_ms: int
) -> dict[tuple[str, frozenset[str]], tuple[int, int]]:
    """(topic, recipients) -> (partition, offset) of the copies of `message` on Kafka.

    Every partition of each topic is read from shortly before the message was
    begun: a message is keyed by its id or, a workflow's, by its thread, and the
    sent index keeps neither key; the signed header says whose copy it is."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    found: dict[tuple[str, frozenset[str]], tuple[int, int]] = {}
    consumer: Any = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
    )
    await start_client(consumer, bootstrap)
    try:
        # The consumer's public topics() fetches this metadata but drops the partitions.
        cluster = await consumer._client.fetch_all_metadata()
        for topic in sorted({c.topic for c in message.copies}):
            for partition in sorted(cluster.partitions_for_topic(topic) or ()):
                tp = TopicPartition(topic, partition)
                consumer.assign([tp])
                since = max(since_ms - LOOK_BEHIND_MS, 0)
                start = (await consumer.offsets_for_times({tp: since}))[tp]
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
    return found


async def settle_pending(
    sender: str,
    bootstrap: str,
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
        found = await find_copies(bootstrap, store, sender, message, created_ms)
        copies = []
        for c in message.copies:
            where = found.get((c.topic, frozenset(c.recipients)))
            copies.append(
                CopyOutcome(
                    c.community,
                    c.topic,
                    c.recipients,
                    partition=where[0] if where else None,
                    offset=where[1] if where else None,
                    error=None if where else PUBLISHER_STOPPED,
                    reason=(
                        "found on its topic when the publisher restarted after a stop"
                        if where
                        else "the publisher stopped after recording its decisions and before "
                        "sending it; it was never sent"
                    ),
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
    _log.warning(
        "publisher recovered messages left pending by a stop",
        participant=sender,
        pending=len(pending),
        outcomes_recorded=len(records),
        copies_found=sum(1 for o in outcomes if o.sent),
        copies_not_sent=sum(1 for o in outcomes if not o.sent),
    )
    return outcomes
