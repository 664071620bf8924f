"""The Integrated EU Cybersecurity Situation Report: built from what one organisation is
entitled to receive, rendered as Markdown, HTML or PDF.

    report = await gather(ctx, "enisa", window=timedelta(hours=24))
    text = to_markdown(report); page = to_html(report); pdf = to_pdf(report)
"""

from __future__ import annotations

from connectors.sitrep.gather import gather
from connectors.sitrep.html import charts, to_html, to_html_fragment
from connectors.sitrep.markdown import to_markdown
from connectors.sitrep.model import ENTITLEMENT, Count, Crisis, Sitrep, build
from connectors.sitrep.pdf import to_pdf

__all__ = [
    "ENTITLEMENT",
    "Count",
    "Crisis",
    "Sitrep",
    "build",
    "charts",
    "gather",
    "to_html",
    "to_html_fragment",
    "to_markdown",
    "to_pdf",
]
