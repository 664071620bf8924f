"""AuditRecord and Checkpoint to and from their Avro single-object bytes (via the schema store)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from broker.audit.checkpoint import Checkpoint
from broker.audit.record import AuditRecord, LoggedRecord
from broker.clock import to_millis
from broker.errors import MalformedRecord
from broker.merkle import leaf_hash
from broker.schemas import SchemaStore

AUDIT_RECORD = "eu.jcu.v1.AuditRecord"
CHECKPOINT = "eu.jcu.v1.Checkpoint"


def encode_leaf(
    store: SchemaStore,
    enforcement_point: str,
    index: int,
    previous_leaf_hash: bytes,
    record: AuditRecord,
) -> bytes:
    return store.encode(
        AUDIT_RECORD,
        {
            "decision_id": record.decision_id,
            "time": record.time,
            "enforcement_point": enforcement_point,
            "index": index,
            "previous_leaf_hash": previous_leaf_hash,
            "action": record.action,
            "organisation": record.organisation,
            "message_id": record.message_id,
            "content_hash": record.content_hash,
            "labels": dict(record.labels) if record.labels is not None else None,
            "decision": record.decision,
            "rule_ids": list(record.rule_ids),
            "legal_basis": list(record.legal_basis),
            "obligations": list(record.obligations),
            "redacted_fields": list(record.redacted_fields),
            "reasons": list(record.reasons),
            "rejection_reason": record.rejection_reason,
            "policy_bundle_hash": record.policy_bundle_hash,
        },
    )


def _time(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise MalformedRecord("time is not a timestamp")
    return to_millis(value)


def decode_leaf(
    store: SchemaStore, data: bytes, *, partition: int | None = None, offset: int | None = None
) -> LoggedRecord:
    """Decode one record of `jcu.audit.decisions` (MalformedRecord/UnknownSchema if not one)."""
    _, r = store.decode(data, expected=AUDIT_RECORD)
    labels: Mapping[str, Any] | None = r["labels"]
    try:
        record = AuditRecord(
            action=r["action"],
            organisation=r["organisation"],
            message_id=r["message_id"],
            decision=r["decision"],
            decision_id=str(r["decision_id"]),
            time=_time(r["time"]),
            content_hash=r["content_hash"],
            labels=labels,
            rule_ids=tuple(r["rule_ids"]),
            legal_basis=tuple(r["legal_basis"]),
            obligations=tuple(r["obligations"]),
            redacted_fields=tuple(r["redacted_fields"]),
            reasons=tuple(r["reasons"]),
            rejection_reason=r["rejection_reason"],
            policy_bundle_hash=r["policy_bundle_hash"],
        )
    except ValueError as exc:
        raise MalformedRecord(f"audit record: {exc}") from None
    return LoggedRecord(
        enforcement_point=r["enforcement_point"],
        index=int(r["index"]),
        previous_leaf_hash=bytes(r["previous_leaf_hash"]),
        record=record,
        data=bytes(data),
        leaf_hash=leaf_hash(data),
        partition=partition,
        offset=offset,
    )


def encode_checkpoint(store: SchemaStore, checkpoint: Checkpoint) -> bytes:
    return store.encode(
        CHECKPOINT,
        {
            "origin": checkpoint.origin,
            "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash,
            "time": checkpoint.time,
            "key_id": checkpoint.key_id,
            "signature": checkpoint.signature,
        },
    )


def decode_checkpoint(store: SchemaStore, data: bytes) -> Checkpoint:
    _, r = store.decode(data, expected=CHECKPOINT)
    return Checkpoint(
        origin=r["origin"],
        tree_size=int(r["tree_size"]),
        root_hash=bytes(r["root_hash"]),
        time=_time(r["time"]),
        key_id=r["key_id"],
        signature=bytes(r["signature"]),
    )
