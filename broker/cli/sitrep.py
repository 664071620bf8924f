"""`jcu sitrep`: the Integrated EU Cybersecurity Situation Report, as this node's organisation.

Built only from what that organisation is entitled to receive (its community's
records encrypted for it, opened and re-checked by the policy), compared with
the period before, and says so in the report.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import click

from broker.cli._node import as_option, node_context
from broker.cli._options import connection_options
from broker.clock import utc_now
from broker.errors import ConfigError

FORMATS = ("md", "html", "pdf", "json")


@click.command()
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="Start of the period: a duration back from now (30m, 24h, 7d) or an ISO 8601 time; "
    "the previous period of the same length is the comparison.",
)
@as_option("The reader: the report holds only what it is entitled to receive")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="md",
    show_default=True,
    help="Markdown, a stand-alone HTML page, PDF, or the data as JSON.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (default: stdout; PDF needs --out unless stdout is a pipe).",
)
@connection_options
def sitrep(since: str, participant: str | None, fmt: str, out: Path | None) -> None:
    """Write the Integrated EU Cybersecurity Situation Report of this node's organisation."""
    from broker.cli.audit import parse_since
    from connectors.sitrep import gather, to_html, to_markdown, to_pdf

    now = utc_now()
    window = now - parse_since(since, now)
    if window <= timedelta(0):
        raise ConfigError(f"--since {since!r} is not in the past; give e.g. 24h or 7d")
    if fmt == "pdf" and out is None and sys.stdout.isatty():
        raise ConfigError("a PDF is not for a terminal: give --out FILE (or pipe stdout)")
    ctx, reader = node_context(participant)
    report = asyncio.run(gather(ctx, reader, window=window, until=now))
    data: bytes
    if fmt == "pdf":
        data = to_pdf(report)
    elif fmt == "html":
        data = to_html(report).encode()
    elif fmt == "json":
        import json

        data = (json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n").encode()
    else:
        data = to_markdown(report).encode()
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    out.write_bytes(data)
    click.echo(
        f"situation report for {reader} ({report.total.now} messages) written to {out}", err=True
    )
