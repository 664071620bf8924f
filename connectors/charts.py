"""Small server-rendered SVG charts: bars, a heat map, lines over time with event markers.

No JavaScript and no front-end build: a chart is a string of SVG made here,
with every label escaped, and readable without colour (values are printed
on bars and cells). Each chart is `<svg class="chart" data-chart=KIND>` with
a `<title>`, so pages and tests can find it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

#: Colour-blind safe palette (Okabe-Ito), in order of use.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKER_COLOURS = {"crisis": "#D55E00", "retraction": "#CC79A7", "key": "#009E73"}
_FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


def _svg(kind: str, title: str, width: int, height: int, body: list[str]) -> str:
    return (
        f'<svg class="chart" data-chart="{kind}" xmlns="http://www.w3.org/2000/svg" '
        f'role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" {_FONT} font-size="12">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(text)}</text>'


def bars(
    rows: Sequence[tuple[str, int | float]],
    *,
    title: str,
    previous: Mapping[str, int | float] | None = None,
    width: int = 520,
) -> str:
    """Horizontal bars, one per row, value printed; `previous` as a thin grey bar beneath."""
    label_w, row_h = 170, 26 if previous is not None else 20
    top = 24
    height = top + max(len(rows), 1) * row_h + 8
    peak = max([v for _, v in rows] + list((previous or {}).values()) + [1])
    span = width - label_w - 60
    body = [_text(0, 14, title, extra='font-weight="bold"')]
    if not rows:
        body.append(_text(label_w, top + 14, "nothing in this period", extra='fill="#555"'))
    for i, (label, value) in enumerate(rows):
        y = top + i * row_h
        w = span * value / peak
        body.append(_text(label_w - 6, y + 13, label, anchor="end"))
        body.append(
            f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{w:.1f}" height="14" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {value}</title></rect>'
        )
        body.append(_text(label_w + w + 4, y + 13, f"{value:g}"))
        if previous is not None:
            pw = span * previous.get(label, 0) / peak
            body.append(
                f'<rect class="bar previous" x="{label_w}" y="{y + 18}" width="{pw:.1f}" '
                f'height="5" fill="#999"><title>previous period: {previous.get(label, 0)}'
                "</title></rect>"
            )
    return _svg("bars", title, width, height, body)


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    values: Mapping[tuple[str, str], int],
    *,
    title: str,
    row_title: str = "",
    col_title: str = "",
) -> str:
    """A matrix of counts: darker is more; every non-zero cell prints its number."""
    label_w, cell, top = 150, 46, 110
    width = label_w + max(len(cols), 1) * cell + 10
    height = top + max(len(rows), 1) * cell + 10
    peak = max([*values.values(), 1])
    body = [_text(0, 14, title, extra='font-weight="bold"')]
    if col_title:
        body.append(_text(label_w, 30, col_title, extra='fill="#555"'))
    if row_title:
        body.append(_text(0, top - 6, row_title, extra='fill="#555"'))
    for j, c in enumerate(cols):
        x = label_w + j * cell + cell / 2
        body.append(
            f'<text x="{x:.1f}" y="{top - 6}" transform="rotate(-45 {x:.1f} {top - 6})">'
            f"{escape(c)}</text>"
        )
    for i, r in enumerate(rows):
        y = top + i * cell
        body.append(_text(label_w - 6, y + cell / 2 + 4, r, anchor="end"))
        for j, c in enumerate(cols):
            v = values.get((r, c), 0)
            share = v / peak
            fill = "#f4f4f4" if v == 0 else _blend(share)
            ink = "#fff" if share > 0.55 else "#000"
            x = label_w + j * cell
            body.append(
                f'<rect class="cell" data-row="{escape(r)}" data-col="{escape(c)}" '
                f'data-value="{v}" x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="{fill}"><title>{escape(r)} to {escape(c)}: {v}</title></rect>'
            )
            if v:
                body.append(
                    _text(
                        x + cell / 2 - 1,
                        y + cell / 2 + 4,
                        str(v),
                        anchor="middle",
                        extra=f'fill="{ink}"',
                    )
                )
    return _svg("heatmap", title, width, height, body)


def _blend(share: float) -> str:
    """From pale blue to dark blue by share of the maximum."""
    lo, hi = (0xDE, 0xEB, 0xF7), (0x08, 0x30, 0x6B)
    rgb = [round(a + (b - a) * (0.15 + 0.85 * share)) for a, b in zip(lo, hi, strict=True)]
    return "#" + "".join(f"{v:02x}" for v in rgb)


def lines(
    series: Mapping[str, Sequence[tuple[datetime, float]]],
    *,
    title: str,
    markers: Sequence[tuple[datetime, str, str]] = (),
    unit: str = "",
    width: int = 760,
    height: int = 240,
) -> str:
    """One line per series over time; `markers` (time, label, kind) as vertical rules."""
    left, right, top, bottom = 56, 150, 24, 34
    times = [t for pts in series.values() for t, _ in pts] + [t for t, _, _ in markers]
    body = [_text(0, 14, title, extra='font-weight="bold"')]
    if not times:
        body.append(_text(left, top + 40, "no data yet", extra='fill="#555"'))
        return _svg("lines", title, width, height, body)
    t0, t1 = min(times), max(times)
    span = max((t1 - t0).total_seconds(), 1.0)
    peak = max([v for pts in series.values() for _, v in pts] + [1.0])
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: datetime) -> float:
        return left + plot_w * (t - t0).total_seconds() / span

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    body.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#333"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>'
    )
    body.append(_text(left - 4, top + 10, f"{peak:g}{unit}", anchor="end"))
    body.append(_text(left - 4, top + plot_h, f"0{unit}", anchor="end"))
    body.append(_text(left, height - 8, t0.strftime("%Y-%m-%d %H:%M:%S UTC")))
    body.append(_text(left + plot_w, height - 8, t1.strftime("%H:%M:%S"), anchor="end"))
    for t, label, kind in markers:
        colour = MARKER_COLOURS.get(kind, "#555")
        body.append(
            f'<line class="marker" data-kind="{escape(kind)}" x1="{x(t):.1f}" y1="{top}" '
            f'x2="{x(t):.1f}" y2="{top + plot_h}" stroke="{colour}" stroke-dasharray="4 3">'
            f"<title>{escape(label)} ({t.isoformat()})</title></line>"
        )
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        if pts:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
            body.append(
                f'<polyline class="series" data-series="{escape(name)}" points="{path}" '
                f'fill="none" stroke="{colour}" stroke-width="2"/>'
            )
            for t, v in pts:
                body.append(
                    f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}">'
                    f"<title>{escape(name)} {t.isoformat()}: {v:g}{unit}</title></circle>"
                )
        ly = top + 12 + i * 16
        body.append(
            f'<rect x="{left + plot_w + 10}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
        )
        body.append(_text(left + plot_w + 24, ly, name))
    kinds = sorted({k for _, _, k in markers})
    for j, kind in enumerate(kinds):
        ly = top + 12 + (len(series) + j) * 16
        body.append(
            f'<line x1="{left + plot_w + 10}" y1="{ly - 4}" x2="{left + plot_w + 20}" '
            f'y2="{ly - 4}" stroke="{MARKER_COLOURS.get(kind, "#555")}" stroke-dasharray="3 2"/>'
        )
        body.append(_text(left + plot_w + 24, ly, kind))
    return _svg("lines", title, width, height, body)
