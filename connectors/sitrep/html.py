"""The situation report as HTML: a fragment the console embeds, or a page of its own."""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from connectors import charts as svg
from connectors.sitrep.model import Count, Sitrep


@cache
def environment() -> Environment:
    """The report's templates (autoescaped); made on first use, never at import."""
    return Environment(
        loader=PackageLoader("connectors.sitrep", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _bars(title: str, rows: tuple[Count, ...]) -> Markup:
    return Markup(  # noqa: S704 - connectors.charts escapes every label
        svg.bars(
            [(c.key, c.now) for c in rows],
            title=title,
            previous={c.key: c.before for c in rows},
        )
    )


def charts(r: Sitrep) -> dict[str, Markup]:
    """The report's charts as SVG markup, by name."""
    return {
        "community": _bars("By community of origin (grey: previous period)", r.by_community),
        "category": _bars("By category", r.by_category),
        "tlp": _bars("By TLP", r.by_tlp),
        "member_state": _bars("By Member State", r.by_member_state),
    }


def to_html_fragment(r: Sitrep) -> Markup:
    """The report's body (no <html>): what the console's sitrep page shows."""
    # rendered by the autoescaping environment above
    return Markup(environment().get_template("sitrep_body.html").render(r=r, charts=charts(r)))  # noqa: S704


def to_html(r: Sitrep) -> str:
    """A stand-alone HTML page (inline style, no external resources)."""
    return environment().get_template("sitrep_page.html").render(r=r, body=to_html_fragment(r))
