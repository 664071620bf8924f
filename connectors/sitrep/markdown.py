"""The situation report as Markdown: for mail, tickets and terminals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from connectors.sitrep.model import Count, Sitrep


def _t(time: datetime) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC")


def _table(title: str, rows: Sequence[Count], first: str) -> list[str]:
    out = [f"### {title}", "", f"| {first} | count | previous | trend |", "|---|---:|---:|---|"]
    out += [f"| {c.key} | {c.now} | {c.before} | {c.trend} |" for c in rows]
    if not rows:
        out.append("| (none) | 0 | 0 | = |")
    return [*out, ""]


def to_markdown(r: Sitrep) -> str:
    cov = r.coverage
    lines = [
        "# Integrated EU Cybersecurity Situation Report",
        "",
        f"**Reader:** {r.reader}  ",
        f"**Period:** {_t(r.since)} to {_t(r.until)} "
        f"(compared with {_t(r.previous_since)} to {_t(r.since)})  ",
        f"**Generated:** {_t(r.generated)}",
        "",
        f"> {r.entitlement}",
        "",
        f"**Messages received:** {r.total.now} (previous period {r.total.before}, "
        f"trend {r.total.trend})",
        "",
        "## Counts",
        "",
        *_table("By community of origin", r.by_community, "community"),
        *_table("By category", r.by_category, "category"),
        *_table("By TLP", r.by_tlp, "TLP"),
        *_table("By Member State", r.by_member_state, "Member State"),
        *_table("By type", r.by_type, "type"),
        "## Top indicators",
        "",
    ]
    if r.top_indicators:
        lines += ["| indicator | type | seen |", "|---|---|---:|"]
        lines += [f"| `{v}` | {t} | {n} |" for v, t, n in r.top_indicators]
    else:
        lines.append("None received in this period.")
    lines += ["", "## Malware families", ""]
    if r.malware_families:
        lines += [f"- {name}: {n}" for name, n in r.malware_families]
    else:
        lines.append("None named in what was received.")
    lines += ["", "## Crises", ""]
    if not r.crises:
        lines.append("No crisis declared in this period.")
    for c in r.crises:
        lines.append(
            f"### {c.incident} ({c.state}): declared by {c.declared_by} on {_t(c.declared)}, "
            f"Member States {', '.join(c.member_states)}, expires {_t(c.expires)}"
        )
        lines.append("")
        lines += [f"- {_t(e.time)}: {e.what}" for e in c.timeline]
        lines.append("")
    lines += ["", "## Open assistance requests", ""]
    if not r.assistance:
        lines.append("None open.")
    for a in r.assistance:
        lines.append(
            f"- {a.requester}: {a.assistance_type} ({a.urgency})"
            + (f", {a.member_state}" if a.member_state else "")
            + (f", incident {a.incident}" if a.incident else "")
            + (f", by {_t(a.deadline)}" if a.deadline else "")
        )
    lines += [
        "",
        "## Source coverage",
        "",
        f"- Topics read: {', '.join(cov.topics)}",
        f"- Records appended in the period: {cov.records}; encrypted for {r.reader}: "
        f"{cov.addressed}; accepted: {cov.accepted}",
        *(f"- {n}" for n in r.notes),
        "",
    ]
    return "\n".join(lines)
