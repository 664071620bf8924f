"""Publishing SOC files (STIX, MISP, CSV) from the CLI: shared by `jcu publish` and `jcu soc watch`.

Connectors are imported inside the functions: the CLI is the composition root,
and `jcu --help` must not load them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from broker.cli._labels import build_labels
from broker.cli._output import console
from broker.envelope import Labels
from broker.pep import Publisher
from broker.schemas import SchemaStore

if TYPE_CHECKING:
    from connectors.soc import Item, ParseResult
    from connectors.soc.publishing import Outcome, PublishReport

#: Items in one file from which a progress bar is shown on stderr.
PROGRESS_FROM = 20


@dataclass(frozen=True, slots=True)
class ExtraLabels:
    """Labels the command line adds to every item (on top of the item's TLP and categories)."""

    handling: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    personal_data: bool = False
    exercise: str | None = None
    incident: str | None = None
    member_states: tuple[str, ...] = ()

    def labels_for(self, store: SchemaStore) -> Callable[[Item], Labels]:
        def labels(item: Item) -> Labels:
            return build_labels(
                store,
                item.payload_type,
                item.record,
                tlp=item.tlp,
                handling=self.handling,
                categories=tuple(sorted(set(item.categories) | set(self.categories))),
                personal_data=self.personal_data,
                exercise=self.exercise,
                incident=self.incident,
                member_states=self.member_states,
            )

        return labels


def parse_input(
    path: Path, *, fmt: str | None, default_tlp: str | None, max_bytes: int | None = None
) -> ParseResult:
    """Read and parse `path` before anything connects: InputFormatError if it cannot be read."""
    from connectors.soc import DEFAULT_MAX_BYTES, parse_file

    return parse_file(
        path, default_tlp=default_tlp, fmt=fmt, max_bytes=max_bytes or DEFAULT_MAX_BYTES
    )


async def publish_items(
    pub: Publisher,
    store: SchemaStore,
    parsed: ParseResult,
    *,
    source: Path,
    extra: ExtraLabels,
    recipients: tuple[str, ...] = (),
    dry_run: bool = False,
) -> PublishReport:
    """Publish every item of `parsed` (or, with `dry_run`, decide only), with a progress
    bar on stderr for long files."""
    from connectors.soc.publishing import publish_parsed

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=len(parsed.items) < PROGRESS_FROM,
    )
    with progress:
        verb = "deciding" if dry_run else "publishing"
        task = progress.add_task(f"{verb} {source.name}", total=len(parsed.items))
        return await publish_parsed(
            pub,
            parsed,
            source=str(source),
            labels_for=extra.labels_for(store),
            recipients=recipients,
            on_item=lambda: progress.advance(task),
            dry_run=dry_run,
        )


async def publish_file(
    pub: Publisher,
    store: SchemaStore,
    path: Path,
    *,
    fmt: str | None,
    default_tlp: str | None,
    extra: ExtraLabels,
    recipients: tuple[str, ...] = (),
    max_bytes: int | None = None,
) -> PublishReport:
    """Parse `path` (InputFormatError if it cannot be read at all) and publish every item."""
    parsed = parse_input(path, fmt=fmt, default_tlp=default_tlp, max_bytes=max_bytes)
    return await publish_items(pub, store, parsed, source=path, extra=extra, recipients=recipients)


def _who(outcome: Outcome) -> str:
    if outcome.status == "skipped":
        return ""
    if not outcome.received_by:
        return "nobody"
    parts = []
    for org in outcome.received_by:
        removed = outcome.redacted.get(org)
        parts.append(f"{org} (without {', '.join(removed)})" if removed else org)
    return ", ".join(parts)


def _why(outcome: Outcome) -> str:
    if outcome.status == "skipped":
        return outcome.reason
    if outcome.received_by:
        return ""
    return "withheld from everyone: " + ", ".join(outcome.rules())


def print_report(report: PublishReport) -> None:
    """Every input object: published (message id, who got what), withheld (the deciding
    rules) or skipped (reason). A dry run says who would get what."""
    out = console()
    title = f"{report.source} ({report.format})"
    if report.dry_run:
        title += ", dry run: nothing sent"
    t = Table(title=title)
    for name in ("object", "type", "status", "TLP", "message", "recipients", "why not"):
        # ids are what people copy (`jcu retract`, `jcu receipts`): never cut them short
        folded = name in ("object", "message", "recipients", "why not")
        t.add_column(name, overflow="fold" if folded else "ellipsis")
    for o in report.outcomes:
        t.add_row(
            o.source_id,
            o.type,
            o.status,
            o.tlp or "",
            o.message_id or "",
            _who(o),
            _why(o),
        )
    out.print(t)
    for note in report.notes:
        out.print(f"note: {note}")
    verb = "would be published" if report.dry_run else "published"
    click.echo(
        f"{report.source}: {len(report.published)} {verb}, {len(report.withheld)} withheld "
        f"from everyone, {len(report.skipped)} skipped",
        err=True,
    )
