"""Answers from the audit log: find records, explain one message in words, tell a
thread's story (a workflow's messages, linked by their thread, never by content).

Only leaves the reader holds the audit key of can be read (its own node's
enforcement points, and any an auditor was given: `broker.audit.keys`); the
rest of the topic stays sealed to it and is counted, not shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker.audit._codec import decode_leaf
from broker.audit.keys import AuditKeys
from broker.audit.record import LoggedRecord
from broker.audit.topic import TopicRecord
from broker.errors import AuditError, JcuError
from broker.schemas import SchemaStore


@dataclass
class ReadCount:
    """How many leaves a reading opened, could not open (no key), or could not decode."""

    opened: int = 0
    sealed: int = 0
    bad: int = 0


def iter_records(
    store: SchemaStore,
    raws: Iterable[TopicRecord],
    keys: AuditKeys,
    count: ReadCount | None = None,
    reached: dict[str, int] | None = None,
) -> Iterator[LoggedRecord]:
    """Every record of every leaf `keys` opens, in topic order; the others are counted.

    A leaf claiming an index its enforcement point's log already reached is a
    re-sent copy (`_topic`) and is read once; `jcu audit verify` tells a copy
    from an insertion. A reading in batches passes one `reached` (enforcement
    point -> the index after the last leaf read) to every batch: a copy re-sent
    after a restart often comes in a later batch than its original."""
    tally = count if count is not None else ReadCount()
    reached = reached if reached is not None else {}
    for raw in raws:
        if keys.point(raw.key) is None:
            tally.sealed += 1
            continue
        try:
            leaf = decode_leaf(
                store, raw.value, keys=keys, partition=raw.partition, offset=raw.offset
            )
        except JcuError:
            tally.bad += 1
            continue
        if leaf.index < reached.get(raw.key, 0):
            continue
        reached[raw.key] = leaf.index + 1
        tally.opened += 1
        yield from leaf.decisions()


def decode_records(
    store: SchemaStore, raws: Iterable[TopicRecord], keys: AuditKeys
) -> tuple[list[LoggedRecord], int]:
    """Every record `keys` can read, and how many leaves did not decode (verify names them)."""
    count = ReadCount()
    records = list(iter_records(store, raws, keys, count))
    return records, count.bad


def matches(
    r: LoggedRecord,
    *,
    message_id: str | None = None,
    organisation: str | None = None,
    decision: str | None = None,
    rule: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    enforcement_point: str | None = None,
    action: str | None = None,
    thread: str | None = None,
) -> bool:
    """Whether `r` passes every given filter (`until` exclusive)."""
    rec = r.record
    return (
        (message_id is None or rec.message_id == message_id)
        and (organisation is None or rec.organisation == organisation)
        and (decision is None or rec.decision == decision)
        and (rule is None or rule in rec.rule_ids)
        and (since is None or rec.time >= since)
        and (until is None or rec.time < until)
        and (enforcement_point is None or r.enforcement_point == enforcement_point)
        and (action is None or rec.action == action)
        and (thread is None or rec.thread == thread)
    )


def query(records: Iterable[LoggedRecord], **filters: Any) -> list[LoggedRecord]:
    """Records matching every given filter (those of `matches`; `until` exclusive), oldest
    first."""
    hits = [r for r in records if matches(r, **filters)]
    return sorted(hits, key=lambda r: (r.record.time, r.enforcement_point, r.index))


_VERBS = {
    "allow": "allowed",
    "redact": "allowed redacted",
    "deny": "denied",
    "reject": "rejected",
    "sent": "sent",
    "unsent": "not sent",
    "applied": "applied",
}
#: How an act reads where the verb alone would not say it.
_ACTS = {
    ("retract", "sent"): "retraction sent",
    ("retract", "unsent"): "retraction not sent",
    ("retract", "applied"): "retraction applied",
    ("crisis", "allow"): "crisis act allowed",
    ("crisis", "reject"): "crisis act refused",
    ("registry", "applied"): "registry change applied",
    ("replay", "allow"): "replayed dead letter allowed",
    ("replay", "reject"): "replayed dead letter rejected",
}


def _without_rule_prefix(reason: str, rule_ids: Sequence[str]) -> str:
    """ "tlp-amber-mandate: mandate does not ..." -> "mandate does not ..." (the rule is named)."""
    for rule in rule_ids:
        if reason.startswith(f"{rule}: "):
            return reason[len(rule) + 2 :]
    return reason


def _where(details: dict[str, str]) -> str:
    if "topic" in details and "offset" in details:
        return f"{details['topic']}[{details.get('partition', '?')}]@{details['offset']}"
    return ""


def sentence(rec: LoggedRecord) -> str:
    """One record in plain words, e.g. "denied by tlp-amber-mandate: mandate does not ..."."""
    r = rec.record
    words = _ACTS.get((r.action, r.decision), _VERBS[r.decision])
    if r.rejection_reason and r.decision in ("reject", "unsent"):
        words += f" ({r.rejection_reason})"
    if r.rule_ids:
        words += f" by {', '.join(r.rule_ids)}"
    where = _where(dict(r.details))
    if where:
        words += f" {'at' if r.decision == 'sent' else 'from'} {where}"
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


def explain(
    records: Iterable[LoggedRecord], message_id: str, organisation: str | None = None
) -> dict[str, list[str]]:
    """Everything recorded about one message, per organisation, in plain words (time order)."""
    out: dict[str, list[str]] = {}
    for rec in query(records, message_id=message_id, organisation=organisation):
        out.setdefault(rec.record.organisation, []).append(sentence(rec))
    if not out:
        about = f" about {organisation}" if organisation else ""
        raise AuditError(
            f"no records of message {message_id}{about} in the audit log this node can read"
        )
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
    id it is), oldest first, each with its decisions and what was then sent of it (send
    outcomes carry the message id only): a workflow case's whole story."""
    ids = {r.record.message_id for r in records if r.record.thread == thread} | {thread}
    hits = [r for r in records if r.record.message_id in ids]
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
