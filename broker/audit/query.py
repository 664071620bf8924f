"""Answers from the audit log: prove one decision, find decisions, explain one message in words,
tell a thread's story (a workflow's messages, linked by their thread, never by content)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from broker.audit._codec import decode_leaf
from broker.audit._topic import TopicRecord
from broker.audit.checkpoint import Checkpoint
from broker.audit.record import LoggedRecord
from broker.audit.verify import VerificationReport
from broker.errors import AuditError, AuditVerificationError, JcuError
from broker.merkle import verify_inclusion
from broker.schemas import SchemaStore


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """One record, the checkpoint it is proved against, the audit path, and the outcome."""

    record: LoggedRecord
    checkpoint: Checkpoint
    path: tuple[bytes, ...]
    verified: bool


def prove(report: VerificationReport, decision_id: str) -> InclusionProof:
    """The inclusion proof of a decision against its enforcement point's latest checkpoint.

    The checkpoint's signature and its consistency with the whole log have
    been checked by the verification that produced `report`.
    """
    for log in report.logs:
        for rec in log.records:
            if rec.record.decision_id != decision_id:
                continue
            if log.report.failure is not None:
                raise AuditVerificationError(
                    f"{log.enforcement_point}: {log.report.failure.message}; "
                    f"no proof from a log that does not verify"
                )
            if not log.checkpoints or rec.index >= log.checkpoints[-1].tree_size:
                raise AuditError(
                    f"decision {decision_id} (record {rec.index} of {log.enforcement_point}) is "
                    f"not sealed by a checkpoint yet; {log.enforcement_point} seals it at its "
                    f"next checkpoint"
                )
            cp = log.checkpoints[-1]
            path = tuple(log.tree.inclusion_proof(rec.index, cp.tree_size))
            ok = verify_inclusion(rec.leaf_hash, rec.index, cp.tree_size, path, cp.root_hash)
            return InclusionProof(rec, cp, path, ok)
    raise AuditError(f"no decision {decision_id} in the audit log")


def decode_records(
    store: SchemaStore, raws: Iterable[TopicRecord]
) -> tuple[list[LoggedRecord], int]:
    """Every decision of every leaf that decodes, and how many leaves did not (verify
    names those)."""
    out: list[LoggedRecord] = []
    bad = 0
    for raw in raws:
        try:
            leaf = decode_leaf(store, raw.value, partition=raw.partition, offset=raw.offset)
        except JcuError:
            bad += 1
            continue
        out.extend(leaf.decisions())
    return out, bad


def query(
    records: Iterable[LoggedRecord],
    *,
    message_id: str | None = None,
    organisation: str | None = None,
    decision: str | None = None,
    rule: str | None = None,
    since: datetime | None = None,
    enforcement_point: str | None = None,
    thread: str | None = None,
) -> list[LoggedRecord]:
    """Records matching every given filter, oldest first."""
    hits = [
        r
        for r in records
        if (message_id is None or r.record.message_id == message_id)
        and (thread is None or r.record.thread == thread)
        and (organisation is None or r.record.organisation == organisation)
        and (decision is None or r.record.decision == decision)
        and (rule is None or rule in r.record.rule_ids)
        and (since is None or r.record.time >= since)
        and (enforcement_point is None or r.enforcement_point == enforcement_point)
    ]
    return sorted(hits, key=lambda r: (r.record.time, r.enforcement_point, r.index))


_VERBS = {"allow": "allowed", "redact": "allowed redacted", "deny": "denied", "reject": "rejected"}


def _without_rule_prefix(reason: str, rule_ids: Sequence[str]) -> str:
    """ "tlp-amber-mandate: mandate does not ..." -> "mandate does not ..." (the rule is named)."""
    for rule in rule_ids:
        if reason.startswith(f"{rule}: "):
            return reason[len(rule) + 2 :]
    return reason


def sentence(rec: LoggedRecord) -> str:
    """One decision in plain words, e.g. "denied by tlp-amber-mandate: mandate does not ..."."""
    r = rec.record
    words = _VERBS[r.decision]
    if r.decision == "reject" and r.rejection_reason:
        words += f" ({r.rejection_reason})"
    if r.rule_ids:
        words += f" by {', '.join(r.rule_ids)}"
    if r.reasons:
        words += ": " + "; ".join(_without_rule_prefix(reason, r.rule_ids) for reason in r.reasons)
    extras = []
    if r.redacted_fields:
        extras.append(f"fields removed: {', '.join(r.redacted_fields)}")
    if r.obligations:
        extras.append(f"obligations: {', '.join(r.obligations)}")
    if r.legal_basis:
        extras.append(f"legal basis {'; '.join(r.legal_basis)}")
    if extras:
        words += f" ({'; '.join(extras)})"
    return f"{words} [{r.action} at {rec.enforcement_point}, {r.time.isoformat()}]"


def explain(records: Sequence[LoggedRecord], message_id: str) -> dict[str, list[str]]:
    """Everything decided about one message, per organisation, in plain words (time order)."""
    out: dict[str, list[str]] = {}
    for rec in query(records, message_id=message_id):
        out.setdefault(rec.record.organisation, []).append(sentence(rec))
    if not out:
        raise AuditError(f"no decisions about message {message_id} in the audit log")
    return dict(sorted(out.items()))


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """One message of a thread as the audit log knows it: who sent it (the enforcement
    point that published it) and every decision about it, per organisation, in words."""

    message_id: str
    first: datetime
    sender: str | None
    decisions: dict[str, list[str]]
    #: The decisions themselves, oldest first.
    records: tuple[LoggedRecord, ...] = ()


def story(records: Sequence[LoggedRecord], thread: str) -> list[ThreadMessage]:
    """Every message of `thread` (the messages whose leaves carry it, and the message whose
    id it is), oldest first, each with its decisions: a workflow case's whole story."""
    hits = [r for r in records if r.record.thread == thread or r.record.message_id == thread]
    if not hits:
        raise AuditError(f"no decisions about thread {thread} in the audit log")
    by_message: dict[str, list[LoggedRecord]] = {}
    for rec in sorted(hits, key=lambda r: (r.record.time, r.enforcement_point, r.index)):
        by_message.setdefault(rec.record.message_id, []).append(rec)
    out = []
    for mid, recs in by_message.items():
        published = [r for r in recs if r.record.action == "publish"]
        sender = published[0].enforcement_point.partition("/")[0] if published else None
        decisions: dict[str, list[str]] = {}
        for rec in recs:
            decisions.setdefault(rec.record.organisation, []).append(sentence(rec))
        out.append(
            ThreadMessage(
                mid, recs[0].record.time, sender, dict(sorted(decisions.items())), tuple(recs)
            )
        )
    return sorted(out, key=lambda m: m.first)
