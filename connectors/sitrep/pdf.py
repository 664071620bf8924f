"""The situation report as PDF, drawn with ReportLab (pure Python, no browser needed),
with the text as real text so it can be searched, copied and read by pdftotext."""

from __future__ import annotations

import io
from datetime import datetime
from xml.sax.saxutils import escape

from connectors.sitrep.model import Count, Sitrep


def _t(time: datetime) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC")


def _chart(title: str, rows: tuple[Count, ...]) -> object:
    from reportlab.graphics.charts.barcharts import HorizontalBarChart
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    shown = rows[:10]
    height = 40 + 18 * max(len(shown), 1)
    d = Drawing(460, height)
    d.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=10))
    if not shown:
        d.add(String(10, height - 32, "nothing in this period", fontSize=9))
        return d
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 130, 10, 300, height - 40
    chart.data = [[c.now for c in reversed(shown)], [c.before for c in reversed(shown)]]
    chart.categoryAxis.categoryNames = [c.key for c in reversed(shown)]
    chart.categoryAxis.labels.fontSize = 8
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 7
    chart.bars[0].fillColor = colors.HexColor("#0072B2")
    chart.bars[1].fillColor = colors.HexColor("#BBBBBB")
    chart.barLabelFormat = "%d"
    chart.barLabels.fontSize = 7
    chart.barLabels.boxAnchor = "w"
    chart.barLabels.dx = 3
    d.add(chart)
    return d


def to_pdf(r: Sitrep) -> bytes:
    """The report as PDF bytes (A4)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    body, h1, h2 = styles["BodyText"], styles["Title"], styles["Heading2"]

    def p(text: str, style: object = body) -> Paragraph:
        return Paragraph(escape(text), style)

    def table(head: list[str], rows: list[list[str]]) -> Table:
        t = Table([head, *rows] if rows else [head, ["(none)"] + [""] * (len(head) - 1)])
        t.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 9),
                    ("FONT", (0, 1), (-1, -1), "Helvetica", 9),
                    ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8EEF6")),
                ]
            )
        )
        return t

    def counts(title: str, first: str, rows: tuple[Count, ...]) -> list[object]:
        return [
            p(title, h2),
            table(
                [first, "count", "previous", "trend"],
                [[c.key, str(c.now), str(c.before), c.trend] for c in rows],
            ),
        ]

    story: list[object] = [
        p("Integrated EU Cybersecurity Situation Report", h1),
        p(f"Reader: {r.reader}"),
        p(
            f"Period: {_t(r.since)} to {_t(r.until)} (compared with {_t(r.previous_since)} "
            f"to {_t(r.since)})"
        ),
        p(f"Generated: {_t(r.generated)}"),
        Spacer(1, 0.2 * cm),
        p(f"Entitlement: {r.entitlement}"),
        Spacer(1, 0.2 * cm),
        p(
            f"Messages received: {r.total.now} (previous period {r.total.before}, "
            f"trend {r.total.trend})"
        ),
        _chart("By community of origin (grey: previous period)", r.by_community),
        _chart("By TLP", r.by_tlp),
        *counts("By community of origin", "community", r.by_community),
        *counts("By category", "category", r.by_category),
        *counts("By TLP", "TLP", r.by_tlp),
        *counts("By Member State", "Member State", r.by_member_state),
        *counts("By type", "type", r.by_type),
        p("Top indicators", h2),
        table(["indicator", "type", "seen"], [[v[:80], t, str(n)] for v, t, n in r.top_indicators]),
        p("Malware families", h2),
        table(["family", "seen"], [[n, str(c)] for n, c in r.malware_families]),
        p("Crises", h2),
    ]
    if not r.crises:
        story.append(p("No crisis declared in this period."))
    for c in r.crises:
        story.append(
            p(
                f"{c.incident} ({c.state}): declared by {c.declared_by} on {_t(c.declared)} for "
                f"{', '.join(c.member_states)}; expires {_t(c.expires)}"
            )
        )
        story.append(table(["time", "event"], [[_t(e.time), e.what] for e in c.timeline]))
    story += [
        p("Open assistance requests", h2),
        table(
            ["requester", "type", "urgency", "Member State", "incident"],
            [
                [a.requester, a.assistance_type, a.urgency, a.member_state or "", a.incident or ""]
                for a in r.assistance
            ],
        ),
        p("Source coverage", h2),
        p(f"Topics read: {', '.join(r.coverage.topics)}"),
        p(
            f"Records appended in the period: {r.coverage.records}; encrypted for {r.reader}: "
            f"{r.coverage.addressed}; accepted: {r.coverage.accepted}"
        ),
        *(p(n) for n in r.notes),
    ]
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        title="Integrated EU Cybersecurity Situation Report",
        author=f"jcu-broker for {r.reader}",
        leftMargin=1.8 * cm,
        rightMargin=1.8 * cm,
    )
    doc.build(story)
    return out.getvalue()
