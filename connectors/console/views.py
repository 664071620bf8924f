"""Each page's content as plain data: the JSON twin returns it, the HTML page renders it.

Every function takes the viewer and filters with it before counting or
listing anything, so a page and its JSON twin can only ever show the same,
permitted, facts. Parameters come from the query string (permalinks).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from broker.audit import EnforcementPointReport, LoggedRecord
from broker.audit.query import sentence
from broker.audit.record import VERDICTS
from broker.errors import JcuError
from broker.policy import HANDLING_CODES, TLPS, Message
from broker.vocabulary import CATEGORIES
from connectors import charts
from connectors.console.access import Forbidden, Viewer
from connectors.console.data import ConsoleData

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class BadRequest(Exception):
    """A parameter the console cannot use; the message says what to give instead."""


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime | None
    until: datetime
    given: str

    def holds(self, t: datetime) -> bool:
        return (self.since is None or t >= self.since) and t <= self.until

    def query(self) -> dict[str, str]:
        """Absolute times: a permalink shows the same period tomorrow."""
        out = {"until": self.until.isoformat(timespec="seconds")}
        if self.since is not None:
            out["since"] = self.since.isoformat(timespec="seconds")
        return out


def _time(value: str, name: str, now: datetime) -> datetime:
    m = _DURATION.match(value.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(
            f"{name}={value!r}: give an ISO 8601 time (2026-11-27T12:00) or a duration "
            "(30m, 12h, 7d)"
        ) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def window(params: Mapping[str, str], now: datetime, default: str | None = "24h") -> Window:
    since_raw = params.get("since") or default
    since = _time(since_raw, "since", now) if since_raw and since_raw != "all" else None
    until = _time(params["until"], "until", now) if params.get("until") else now
    if since is not None and since > until:
        raise BadRequest("since is after until")
    return Window(since, until, since_raw or "all")


def _sender(rec: LoggedRecord) -> str:
    return rec.enforcement_point.partition("/")[0]


def _side(rec: LoggedRecord) -> str:
    return rec.enforcement_point.partition("/")[2]


def _labels(rec: LoggedRecord) -> dict[str, Any]:
    from broker.envelope.labels import tlp_from_avro

    labels = dict(rec.record.labels or {})
    if "tlp" in labels:
        labels["tlp"] = tlp_from_avro(labels["tlp"])
    return labels


def _t(t: datetime | None) -> str | None:
    return t.isoformat(timespec="milliseconds") if t is not None else None


def visible(data: ConsoleData, viewer: Viewer) -> list[LoggedRecord]:
    return [r for r in data.audit.records if viewer.sees(r)]


# -- flows --------------------------------------------------------------------


def flows(data: ConsoleData, viewer: Viewer, params: Mapping[str, str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    w = window(params, now)
    tlp = params.get("tlp") or None
    if tlp is not None and tlp not in TLPS:
        raise BadRequest(f"tlp={tlp!r}: one of {', '.join(TLPS)}")
    community = {p.id: p.community for p in data.ctx.registry}
    pairs: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_community: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    denied: Counter[tuple[str, str]] = Counter()
    for rec in visible(data, viewer):
        r = rec.record
        if r.action != "publish" or _side(rec) not in ("publish", "seal"):
            continue
        if not w.holds(r.time):
            continue
        labels = _labels(rec)
        level = labels.get("tlp", "?")
        if tlp is not None and level != tlp:
            continue
        sender = _sender(rec)
        if r.decision in ("allow", "redact"):
            pairs[(sender, r.organisation)].add(r.message_id)
            key = (community.get(sender, "?"), community.get(r.organisation, "?"), level)
            by_community[key].add(r.message_id)
        elif r.decision == "deny":
            denied[(sender, r.organisation)] += 1
    counts = {k: len(v) for k, v in pairs.items()}
    senders = sorted({s for s, _ in counts})
    receivers = sorted({o for _, o in counts})
    comm_counts: Counter[tuple[str, str]] = Counter()
    for (a, b, _), ids in by_community.items():
        comm_counts[(a, b)] += len(ids)
    communities = [c for c in ("civilian", "law_enforcement", "diplomatic", "defence")]
    return {
        "window": {"since": _t(w.since), "until": _t(w.until)},
        "permalink": {**w.query(), **({"tlp": tlp} if tlp else {})},
        "tlp": tlp,
        "flows": [{"from": s, "to": o, "messages": n} for (s, o), n in sorted(counts.items())],
        "by_community": [
            {"from": a, "to": b, "tlp": t, "messages": len(ids)}
            for (a, b, t), ids in sorted(by_community.items())
        ],
        "denied": [{"from": s, "to": o, "decisions": n} for (s, o), n in sorted(denied.items())],
        "_charts": {
            "organisations": charts.heatmap(
                senders,
                receivers,
                counts,
                title="Messages shared, sender (row) to recipient (column)",
                row_title="sender",
                col_title="recipient",
            ),
            "communities": charts.heatmap(
                communities,
                communities,
                dict(comm_counts),
                title="Messages shared between communities" + (f" (TLP:{tlp})" if tlp else ""),
                row_title="from community",
                col_title="to community",
            ),
        },
    }


# -- messages -----------------------------------------------------------------


#: Acts the logs record that are no message (`crisis:<incident>`, `registry:<epoch>`):
#: on the crisis board and the audit page, not in the list of messages.
_ACTS = frozenset({"crisis", "registry"})


def _message_rows(data: ConsoleData, viewer: Viewer) -> dict[str, list[LoggedRecord]]:
    out: dict[str, list[LoggedRecord]] = {}
    for mid, recs in data.audit.by_message.items():
        mine = [r for r in recs if viewer.sees(r) and r.record.action not in _ACTS]
        if mine:
            out[mid] = mine
    return out


def _summary(data: ConsoleData, mid: str, recs: list[LoggedRecord]) -> dict[str, Any]:
    publish = [r for r in recs if r.record.action == "publish"]
    first = min(publish or recs, key=lambda r: r.record.time)
    labels = _labels(first)
    decisions = Counter(r.record.decision for r in publish)
    delivered = {
        r.record.organisation
        for r in recs
        if r.record.action == "receive" and r.record.decision in ("allow", "redact")
    }
    sender = _sender(first) if publish else None
    retraction = data.envelopes.retractions.get(mid)
    return {
        "message_id": mid,
        "sender": sender,
        "type": data.envelopes.payload_type(mid),
        "time": _t(first.record.time),
        "tlp": labels.get("tlp"),
        "categories": list(labels.get("categories") or ()),
        "incident": labels.get("incident"),
        "member_states": list(labels.get("member_states") or ()),
        "allowed": decisions["allow"],
        "redacted": decisions["redact"],
        "denied": decisions["deny"],
        "delivered": len(delivered),
        "retracted": retraction is not None and retraction.sender == sender,
    }


def messages(data: ConsoleData, viewer: Viewer, params: Mapping[str, str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    w = window(params, now, default="7d")
    q = (params.get("q") or "").strip().lower()
    filters = {k: params.get(k) or None for k in ("sender", "type", "tlp", "category", "incident")}
    try:
        limit = min(max(int(params.get("limit") or 200), 1), 2000)
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    rows = []
    for mid, recs in _message_rows(data, viewer).items():
        s = _summary(data, mid, recs)
        t = datetime.fromisoformat(s["time"])
        if not w.holds(t):
            continue
        if filters["sender"] and s["sender"] != filters["sender"]:
            continue
        if filters["type"] and s["type"] != filters["type"]:
            continue
        if filters["tlp"] and s["tlp"] != filters["tlp"]:
            continue
        if filters["category"] and filters["category"] not in s["categories"]:
            continue
        if filters["incident"] and s["incident"] != filters["incident"]:
            continue
        if q and q not in " ".join(str(v) for v in s.values()).lower():
            continue
        rows.append(s)
    rows.sort(key=lambda s: s["time"], reverse=True)
    return {
        "window": {"since": _t(w.since), "until": _t(w.until)},
        "permalink": {
            **w.query(),
            **{k: v for k, v in filters.items() if v},
            **({"q": q} if q else {}),
        },
        "filters": filters,
        "q": q,
        "total": len(rows),
        "messages": rows[:limit],
        "choices": {"tlp": list(TLPS), "category": list(CATEGORIES)},
        "types_from": (
            f"the clear envelope headers on {data.data_topics}; a message with no copy "
            "there (every recipient denied, on a topic not read, or removed by the topic's "
            "retention) has no type to show"
        ),
        "unreadable_records": data.envelopes.unreadable if viewer.operator else None,
    }


def _proof(data: ConsoleData, rec: LoggedRecord) -> dict[str, Any]:
    try:
        p = data.audit.prove(rec)
    except JcuError as exc:
        return {"decision_id": rec.record.decision_id, "verified": False, "status": str(exc)}
    cp = p.checkpoint
    return {
        "decision_id": rec.record.decision_id,
        "enforcement_point": rec.enforcement_point,
        "leaf_index": rec.index,
        "leaf_hash": rec.leaf_hash.hex(),
        "checkpoint": {
            "origin": cp.origin,
            "tree_size": cp.tree_size,
            "root_hash": cp.root_hash.hex(),
            "time": _t(cp.time),
            "note": cp.note(),
        },
        "witnesses": list(p.witnesses),
        "inclusion_proof": [h.hex() for h in p.path],
        "verified": p.verified,
        "status": (
            "verified against a signed checkpoint"
            + (f" cosigned by {', '.join(p.witnesses)}" if p.witnesses else " (not witnessed)")
        )
        if p.verified
        else "the inclusion proof does NOT verify",
    }


def decision_json(rec: LoggedRecord) -> dict[str, Any]:
    r = rec.record
    return {
        "decision_id": r.decision_id,
        "time": _t(r.time),
        "enforcement_point": rec.enforcement_point,
        "index": rec.index,
        "action": r.action,
        "organisation": r.organisation,
        "decision": r.decision,
        "rule_ids": list(r.rule_ids),
        "legal_basis": list(r.legal_basis),
        "reasons": list(r.reasons),
        "obligations": list(r.obligations),
        "redacted_fields": list(r.redacted_fields),
        "rejection_reason": r.rejection_reason,
        "sentence": sentence(rec),
    }


async def story(data: ConsoleData, viewer: Viewer, message_id: str) -> dict[str, Any]:
    """One message: per organisation decided, redacted or denied, delivered, pending,
    retracted; every visible decision with its inclusion proof verified here."""
    recs = [r for r in data.audit.by_message.get(message_id, []) if viewer.sees(r)]
    if not recs:
        if viewer.operator:
            raise LookupError(f"no decisions about message {message_id} in the audit log")
        raise Forbidden(f"message {message_id} is not within the view of {viewer.describe()}")
    summary = _summary(data, message_id, recs)
    receipts = (await data.receipts()).get(message_id, []) if summary["sender"] == data.node else []
    receipt_at = {v.receiver: v.received for v in receipts}
    per_org: dict[str, dict[str, Any]] = {}
    for rec in sorted(recs, key=lambda r: r.record.time):
        r = rec.record
        row = per_org.setdefault(
            r.organisation,
            {
                "organisation": r.organisation,
                "decision": None,
                "rules": [],
                "legal_basis": [],
                "why": [],
                "delivery": None,
                "delivered": None,
                "receipt": None,
            },
        )
        if r.action == "publish":
            row.update(
                decision=r.decision,
                rules=list(r.rule_ids),
                legal_basis=list(r.legal_basis),
                why=[sentence(rec)],
                redacted_fields=list(r.redacted_fields),
            )
        elif r.action == "receive":
            if r.decision in ("allow", "redact"):
                row["delivery"] = "delivered"
                row["delivered"] = _t(r.time)
            else:
                row["delivery"] = f"refused on receipt ({r.rejection_reason or r.decision})"
            row["why"].append(sentence(rec))
        elif r.action == "send" and r.decision == "unsent":
            row["delivery"] = row["delivery"] or f"not sent ({r.rejection_reason})"
            row["why"].append(sentence(rec))
    for org, row in per_org.items():
        if org in receipt_at:
            row["receipt"] = _t(receipt_at[org])
            row["delivery"] = row["delivery"] or "delivered"
        if row["delivery"] is None and row["decision"] in ("allow", "redact"):
            row["delivery"] = "pending"
        if summary["retracted"] and row["decision"] in ("allow", "redact"):
            row["delivery"] = f"{row['delivery']}, retracted"
    order = {"allow": 0, "redact": 1, "deny": 2, None: 3}
    rows = sorted(per_org.values(), key=lambda x: (order.get(x["decision"], 3), x["organisation"]))
    decisions = [decision_json(r) for r in sorted(recs, key=lambda r: r.record.time)]
    proofs = [_proof(data, r) for r in recs]
    return {
        "message": summary,
        "labels": _labels(recs[0]),
        "content_hash": recs[0].record.content_hash.hex() if recs[0].record.content_hash else None,
        "organisations": rows,
        "decisions": decisions,
        "proofs": proofs,
        "receipts_note": None
        if summary["sender"] == data.node
        else (
            f"signed receipts are sealed to the sender alone: only {summary['sender']}'s node "
            "can read them; delivery times here come from the receivers' audit records"
        ),
    }


def proof_of(data: ConsoleData, viewer: Viewer, decision_id: str) -> dict[str, Any]:
    for rec in data.audit.records:
        if rec.record.decision_id == decision_id:
            if not viewer.sees(rec):
                raise Forbidden(
                    f"decision {decision_id} is not within the view of {viewer.describe()}"
                )
            return {"record": decision_json(rec), **_proof(data, rec)}
    if not viewer.operator:
        raise Forbidden(f"decision {decision_id} is not within the view of {viewer.describe()}")
    raise LookupError(f"no decision {decision_id} in the audit log")


# -- audit --------------------------------------------------------------------


def _markers(data: ConsoleData, viewer: Viewer, w: Window) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    shown: set[str] = set()
    for d in data.crisis.declarations():
        shown.add(d.id)
        if w.holds(d.created):
            what = "declared" if d.active else "ended"
            out.append(
                {
                    "time": d.created,
                    "kind": "crisis",
                    "label": f"crisis {d.incident} {what} by {d.declared_by}",
                }
            )
    # Acts jcu.control no longer holds (compaction keeps the newest per incident) are in
    # the crisis authorities' control logs; they were published to every node.
    for rec in data.audit.records:
        r = rec.record
        if r.action != "crisis" or r.decision != "allow" or not w.holds(r.time):
            continue
        if r.details.get("declaration") in shown:
            continue
        what = "declared" if r.details.get("act") == "declare" else "ended"
        incident = r.details.get("incident", r.message_id.removeprefix("crisis:"))
        out.append(
            {
                "time": r.time,
                "kind": "crisis",
                "label": f"crisis {incident} {what} by {r.organisation}",
            }
        )
    visible_ids = set(_message_rows(data, viewer)) if not viewer.operator else None
    for mid, facts in data.envelopes.retractions.items():
        if visible_ids is not None and mid not in visible_ids:
            continue
        if w.holds(facts.created):
            out.append(
                {
                    "time": facts.created,
                    "kind": "retraction",
                    "label": f"{facts.sender} retracted {mid}",
                }
            )
    keyring = data.ctx.envelope.keyring
    for org in keyring.participants():
        for k in keyring.entry(org).keys:
            for t, what in (
                (k.not_before, "key registered"),
                (k.retired, "key retired"),
                (k.revoked, f"key revoked ({k.revocation_reason or ''})"),
            ):
                if t is not None and w.holds(t):
                    out.append(
                        {"time": t, "kind": "key", "label": f"{org}: {what} {k.key_id[:12]}"}
                    )
    return sorted(out, key=lambda m: m["time"])


def _buckets(w: Window, times: list[datetime]) -> tuple[datetime, timedelta]:
    start = w.since or (min(times) if times else w.until - timedelta(hours=1))
    span = max(w.until - start, timedelta(minutes=1))
    return start, span / 48


def _witness_status(r: EnforcementPointReport) -> str:
    """What the witnesses say of one log, in words."""
    if not r.witnesses:
        return "not witnessed (no witness has cosigned a checkpoint of it)"
    latest = r.latest.tree_size if r.latest is not None else 0
    names = ", ".join(f"{w.witness} at {w.tree_size}" for w in r.witnesses)
    behind = "" if r.witnessed >= latest else f"; the latest checkpoint ({latest}) not yet"
    return f"cosigned by {names}{behind}"


def _overall_witness(logs: list[dict[str, Any]]) -> str:
    witnessed = sum(1 for lg in logs if lg["witnesses"])
    return f"{witnessed} of {len(logs)} logs witnessed by another participant"


def audit(data: ConsoleData, viewer: Viewer, params: Mapping[str, str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    w = window(params, now)
    ep = params.get("ep") or None
    if ep is not None and not viewer.sees_ep(ep):
        raise Forbidden(f"{viewer.describe()} may not see the log of {ep}")
    report = data.audit.report
    logs = []
    for r in report.reports:
        if not viewer.sees_ep(r.enforcement_point):
            continue
        if ep is not None and r.enforcement_point != ep:
            continue
        cp = r.latest
        logs.append(
            {
                "enforcement_point": r.enforcement_point,
                "records": r.records,
                "decisions": r.decisions,
                "checkpoints": r.checkpoints,
                "sealed": r.sealed,
                "unsealed": r.unsealed,
                "result": "ok" if r.ok else f"FAIL ({r.failure.kind})" if r.failure else "?",
                "failure": r.failure.message if r.failure else None,
                "latest_checkpoint": None
                if cp is None
                else {
                    "tree_size": cp.tree_size,
                    "root_hash": cp.root_hash.hex(),
                    "time": _t(cp.time),
                },
                "witness": _witness_status(r),
                "witnesses": [
                    {"witness": w.witness, "tree_size": w.tree_size, "time": _t(w.time)}
                    for w in r.witnesses
                ],
            }
        )
    recs = [
        x
        for x in visible(data, viewer)
        if w.holds(x.record.time) and (ep is None or x.enforcement_point == ep)
    ]
    start, step = _buckets(w, [x.record.time for x in recs])
    series: dict[str, Counter[int]] = {v: Counter() for v in VERDICTS}
    for x in recs:
        series[x.record.decision][int((x.record.time - start) / step)] += 1
    n = int((w.until - start) / step) + 1
    points = {
        verdict: [(start + step * i, float(c[i])) for i in range(n)]
        for verdict, c in series.items()
    }
    markers = _markers(data, viewer, w)
    recent = sorted(recs, key=lambda r: r.record.time, reverse=True)[:100]
    return {
        "window": {"since": _t(w.since), "until": _t(w.until)},
        "permalink": {**w.query(), **({"ep": ep} if ep else {})},
        "verified_at": _t(data.audit.verified_at),
        "ok": all(lg["failure"] is None for lg in logs),
        "witness": _overall_witness(logs),
        "logs": logs,
        "undecodable_leaves": data.audit.undecodable if viewer.operator else None,
        "sealed_leaves": data.audit.sealed if viewer.operator else None,
        "timeline": {
            "bucket_seconds": step.total_seconds(),
            "decisions": {k: [[_t(t), v] for t, v in pts] for k, pts in points.items()},
            "markers": [{**m, "time": _t(m["time"])} for m in markers],
        },
        "recent": [decision_json(r) for r in recent],
        "_charts": {
            "timeline": charts.lines(
                points,
                title="Decisions over time, by outcome",
                markers=[(m["time"], m["label"], m["kind"]) for m in markers],
            )
        },
    }


# -- health -------------------------------------------------------------------


def _clock(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC") if t is not None else "not yet"


def _span(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 60:.0f} minutes"


def health(data: ConsoleData, viewer: Viewer, params: Mapping[str, str]) -> dict[str, Any]:
    samples = list(data.health.samples)
    groups: list[dict[str, Any]] = []
    lag_series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    lag_seconds: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    rate_series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for prev, cur in zip([None, *samples], samples, strict=False):
        for g in cur.groups.values():
            if not viewer.sees_group(g.group):
                continue
            lag_series[g.group].append((cur.time, float(g.lag_records)))
            lag_seconds[g.group].append((cur.time, float(g.lag_seconds)))
            if prev is not None and g.group in prev.groups:
                secs = max((cur.time - prev.time).total_seconds(), 1e-3)
                rate = (g.committed - prev.groups[g.group].committed) / secs
                rate_series[g.group].append((cur.time, max(rate, 0.0)))
    last = samples[-1] if samples else None
    if last is not None:
        for g in sorted(last.groups.values(), key=lambda g: g.group):
            if viewer.sees_group(g.group):
                rates = rate_series.get(g.group)
                groups.append(
                    {
                        "group": g.group,
                        "lag_records": g.lag_records,
                        "lag_seconds": round(g.lag_seconds, 1),
                        "consumed_per_second": round(rates[-1][1], 2) if rates else None,
                    }
                )
    dead: Counter[str] = Counter()
    dead_series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for s in samples:
        per: Counter[str] = Counter()
        for (who, why), n in s.dead_letters.items():
            if viewer.may_see_org(who):
                per[why] += n
        for why, n in per.items():
            dead_series[why].append((s.time, float(n)))
        if s is last:
            dead = per
    published: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    if viewer.operator:
        for prev2, cur2 in pairwise(samples):
            secs = max((cur2.time - prev2.time).total_seconds(), 1e-3)
            fam: Counter[str] = Counter()
            for topic, n in cur2.topics.items():
                if topic.count(".") == 2 and not topic.startswith("jcu.audit"):
                    fam[topic.split(".")[1]] += n - prev2.topics.get(topic, 0)
            for k, v in fam.items():
                published[k].append((cur2.time, max(v, 0) / secs))
    violations = [
        v
        for v in (last.policy_violations if last else [])
        if viewer.operator or v.get("refused_by") == viewer.org or v.get("sender") == viewer.org
    ]
    kept = data.health.keep
    return {
        "sampled_at": _t(last.time) if last else None,
        "sample_every_seconds": data.health.every,
        "samples": len(samples),
        "history": {
            "since": _t(samples[0].time) if samples else None,
            "console_started": _t(data.health.started),
            "kept": kept,
            "note": (
                f"kept in memory since the console started ({_clock(data.health.started)}): "
                f"the newest {kept} samples "
                f"(about {_span(data.health.every * kept)} at this rate); restarting the "
                "console starts it again (Prometheus keeps the long history: "
                "`jcu console --metrics-port`)"
            ),
        },
        "error": data.health.error,
        "groups": groups,
        "dead_letters": dict(sorted(dead.items())),
        "policy_violations": violations,
        "topics": dict(last.topics) if (last and viewer.operator) else None,
        "_charts": {
            "lag": charts.lines(dict(lag_series), title="Consumer lag (records), per group"),
            "lag_seconds": charts.lines(
                dict(lag_seconds), title="Consumer lag (seconds), per group", unit="s"
            ),
            "rates": charts.lines(
                dict(rate_series), title="Records consumed per second, per group", unit="/s"
            ),
            "dead_letters": charts.bars(
                sorted(dead.items(), key=lambda kv: -kv[1]), title="Dead letters by reason"
            ),
            "dead_letters_over_time": charts.lines(
                dict(dead_series), title="Dead letters by reason over time"
            ),
            **(
                {
                    "published": charts.lines(
                        dict(published),
                        title="Records appended per second, by community",
                        unit="/s",
                    )
                }
                if viewer.operator
                else {}
            ),
        },
    }


# -- policy -------------------------------------------------------------------


def _split(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.strip() for item in values for v in item.split(",") if v.strip())


def policy(
    data: ConsoleData, viewer: Viewer, params: Mapping[str, str], multi: Mapping[str, list[str]]
) -> dict[str, Any]:
    engine = data.ctx.policy
    rules = [
        {
            "id": r.id,
            "effect": r.effect,
            "file": r.file,
            "legal_basis": r.legal_basis,
            "summary": r.summary or r.reason,
            "tlp": r.tlp,
            "requires": list(r.requires),
            "obligation": r.obligation,
            "rulebook": r.rulebook,
        }
        for r in sorted(engine.rules.values(), key=lambda r: (r.file, r.order))
    ]
    live = sorted(data.crisis.active_incidents())
    result: dict[str, Any] = {
        "bundle_hash": engine.bundle_hash,
        "rules": rules,
        "crisis": {"active_incidents": live, "feed_healthy": data.crisis.healthy},
        "form": dict(params),
        "choices": {
            "tlp": list(TLPS),
            "category": list(CATEGORIES),
            "handling": list(HANDLING_CODES),
            "sender": sorted(p.id for p in engine.registry),
        },
        "decisions": None,
    }
    sender = params.get("from")
    if not sender:
        return result
    registry = engine.registry
    if sender not in registry:
        raise BadRequest(f"from={sender!r} is not a registered organisation")
    tlp = (params.get("tlp") or "").upper()
    if tlp not in TLPS:
        raise BadRequest(f"tlp={tlp!r}: one of {', '.join(TLPS)}")
    ptype = params.get("type") or ""
    if not ptype:
        raise BadRequest("type is required (Indicator, IncidentReport, ...)")
    categories = _split(multi.get("category", []))
    bad = sorted(categories - set(CATEGORIES))
    if bad:
        raise BadRequest(f"unknown categories {bad}")
    handling = frozenset(h.upper() for h in _split(multi.get("handling", [])))
    if handling - set(HANDLING_CODES):
        raise BadRequest(f"handling codes are among {', '.join(HANDLING_CODES)}")
    named = _split(multi.get("to", []))
    unknown = sorted(n for n in named if n not in registry)
    if unknown:
        raise BadRequest(f"to names unknown organisations {unknown}")
    incident = params.get("incident") or None
    crisis_flag = params.get("crisis") in ("1", "on", "true")
    if crisis_flag and not incident:
        raise BadRequest("crisis needs an incident (a crisis is declared for an incident)")
    msg = Message(
        sender=sender,
        payload_type=ptype,
        tlp=tlp,
        categories=categories,
        handling=handling,
        personal_data=params.get("personal_data") in ("1", "on", "true"),
        recipients=named,
        incident=incident,
        member_states=frozenset(s.upper() for s in _split(multi.get("member_states", []))),
        exercise=params.get("exercise") or None,
    )
    crisis = frozenset(live)
    if crisis_flag and incident:
        crisis |= {incident}
    try:
        decisions = engine.decide_all(msg, crisis_incidents=crisis)
    except JcuError as exc:
        raise BadRequest(str(exc)) from None
    result["decisions"] = [d.to_dict() for d in decisions]
    result["crisis_applied"] = sorted(crisis)
    return result


# -- crisis board ---------------------------------------------------------------


def _declarations(data: ConsoleData, incident: str) -> list[LoggedRecord]:
    """The allowed declarations of `incident` the control logs recorded, oldest first:
    what was published on jcu.control, which every node reads (so shown to every viewer),
    kept in the audit log after compaction left only the newest act on the topic."""
    return sorted(
        (
            r
            for r in data.audit.by_message.get(f"crisis:{incident}", [])
            if r.record.action == "crisis"
            and r.record.decision == "allow"
            and r.record.details.get("act") == "declare"
        ),
        key=lambda r: r.record.time,
    )


def crisis(data: ConsoleData, viewer: Viewer, params: Mapping[str, str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    rows = []
    for d in data.crisis.declarations():
        state = "active" if d.in_force(now) else ("ended" if not d.active else "expired")
        row: dict[str, Any] = {
            "incident": d.incident,
            "state": state,
            "declared_by": d.declared_by,
            "member_states": list(d.member_states),
            "declared": _t(d.created),
            "expires": _t(d.expires),
            "ended_by": None,
            "ended": None,
            "signer_key_id": d.signer_key_id,
        }
        if not d.active:  # jcu.control keeps the end: who declared it is in the audit log
            before = [r for r in _declarations(data, d.incident) if r.record.time <= d.created]
            declared = before[-1] if before else None
            row.update(
                ended_by=d.declared_by,
                ended=_t(d.created),
                declared_by=declared.record.organisation if declared else None,
                declared=_t(declared.record.time) if declared else None,
                expires=declared.record.details.get("expires") if declared else None,
            )
        rows.append(row)
    refused = [
        decision_json(r)
        for r in visible(data, viewer)
        if _side(r) == "control" and r.record.decision == "reject"
    ]
    rows.sort(key=lambda r: (r["state"] != "active", r["declared"] or ""), reverse=False)
    return {
        "feed_healthy": data.crisis.healthy,
        "active": [r for r in rows if r["state"] == "active"],
        "past": [r for r in rows if r["state"] != "active"],
        "refused_declarations": refused,
        "note": (
            "jcu.control is compacted: it keeps the newest act of each incident; who declared "
            "an ended crisis comes from the crisis authority's control log (unknown when this "
            "console does not hold its audit key)"
        ),
    }
