"""Publishing SOC files (STIX, MISP, CSV) from the CLI: shared by `jcu publish` and `jcu soc watch`.

Connectors are imported inside the functions: the CLI is the composition root,
and `jcu --help` must not load them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from broker.cli._labels import build_labels
from broker.cli._outage import Outage
from broker.cli._output import console
from broker.cli._progress import ProgressFile, RunProgress, file_digest
from broker.errors import ConfigError, Interrupted, KafkaUnavailable
from broker.pep import Publisher
from broker.schemas import SchemaStore

if TYPE_CHECKING:
    from broker.envelope import Labels
    from broker.pep.context import PepContext
    from connectors.soc import Item, ParseResult
    from connectors.soc.publishing import Outcome, PublishReport, Tally

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
    path: Path,
    *,
    fmt: str | None,
    default_tlp: str | None,
    max_bytes: int | None = None,
    stop: threading.Event | None = None,
) -> ParseResult:
    """Read and parse `path` before anything connects: InputFormatError if it cannot be read.
    A big STIX bundle is checked on every core (nothing is sent before it is parsed), and
    `stop` ends those checks within a chunk (`Interrupted`)."""
    from connectors.soc import DEFAULT_MAX_BYTES, cores, parse_file

    return parse_file(
        path,
        default_tlp=default_tlp,
        fmt=fmt,
        max_bytes=max_bytes or DEFAULT_MAX_BYTES,
        workers=cores(),
        stop=stop,
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
    source_id: str | None = None,
    outage: Outage | None = None,
    on_chunk: Callable[[Tally], object] | None = None,
    chunk: int | None = None,
) -> PublishReport:
    """Publish every item of `parsed` (or, with `dry_run`, decide only), with a progress
    bar on stderr for long files; each call to Kafka under `outage`'s terms."""
    from connectors.soc.publishing import CHUNK, publish_parsed

    verb = "deciding" if dry_run else "publishing"
    with _progress_bar(f"{verb} {source.name}", len(parsed.items)) as tick:
        return await publish_parsed(
            pub,
            parsed,
            source=str(source),
            labels_for=extra.labels_for(store),
            recipients=recipients,
            on_item=tick,
            dry_run=dry_run,
            source_id=source_id,
            guard=outage.guard if outage is not None else None,
            on_chunk=on_chunk,
            chunk=CHUNK if chunk is None else chunk,
        )


@contextmanager
def _progress_bar(description: str, total: int) -> Iterator[Callable[[], None] | None]:
    """A progress bar on stderr while the block runs, from PROGRESS_FROM items (rich's
    progress display is imported only then); yields what ticks it, or None."""
    if total < PROGRESS_FROM:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)


@dataclass(frozen=True, slots=True)
class FileRun:
    """One file's publishing run: its report, and whether the publisher stopped cleanly
    (False: Kafka kept it from writing its last checkpoint; the next start settles)."""

    report: PublishReport
    clean: bool = True


def nothing_sent(parsed: ParseResult, source: Path, why: str) -> PublishReport:
    """The report of a run that never reached Kafka: every item not sent, and why."""
    from connectors.soc.publishing import Outcome, PublishReport

    outcomes = [
        Outcome(i.source_id, i.kind, "not sent", tlp=i.tlp, reason=why) for i in parsed.items
    ]
    outcomes += [
        Outcome(s.source_id, s.source_type, "skipped", reason=s.reason) for s in parsed.skipped
    ]
    return PublishReport(str(source), parsed.format, tuple(outcomes), parsed.notes, stopped=why)


async def connect_publisher(outage: Outage, sender: str, ctx: PepContext) -> Publisher:
    """`sender`'s publisher, started on `outage`'s terms; one whose start completes as the
    run is cancelled (a file that fails to parse ends it) is stopped, not left open."""

    async def started() -> Publisher:
        pub = Publisher(sender, ctx)
        await pub.start()
        return pub

    return await outage.connect(started, undo=Publisher.stop)


async def run_file(
    ctx: PepContext,
    sender: str,
    parse: Callable[[threading.Event], ParseResult],
    path: Path,
    outage: Outage,
    *,
    extra: ExtraLabels,
    recipients: tuple[str, ...] = (),
    dry_run: bool = False,
    source_id: str | None = None,
    progress: ProgressFile | None = None,
    chunk: int | None = None,
) -> FileRun:
    """Read and `parse` the file (in a thread) while the publisher connects (within the
    give-up time), publish it, write progress after every chunk, and stop the publisher
    within a bounded time whatever Kafka does. A file that cannot be parsed ends the run
    before anything is sent, with its one error (the connection attempt is dropped, and
    nothing it would have said about Kafka is said); so does being asked to stop while a
    big file is parsed (`parse_stoppable`)."""
    # Both take a while (the STIX library's import, the connections' round trips), and
    # neither needs the other: the first object goes out when both are done.
    outage.hold()
    parsing = asyncio.ensure_future(parse_stoppable(parse, outage, path))
    connecting = asyncio.ensure_future(connect_publisher(outage, sender, ctx))
    try:
        parsed = await parsing
    except BaseException:
        outage.release(tell=False)
        await _abandon(connecting)
        raise
    outage.release(tell=True)
    objects = len(parsed.items) + len(parsed.skipped)
    digest = file_digest(path) if progress is not None else ""

    def save(tally: Tally, finished: bool = False) -> None:
        if progress is not None and not dry_run:
            progress.save(digest, tally, objects, finished=finished)

    try:
        pub = await connecting
    except (Interrupted, KafkaUnavailable) as exc:
        report = nothing_sent(parsed, path, str(exc))
        save(report.tally())
        return FileRun(report)
    try:
        report = await publish_items(
            pub,
            ctx.envelope.store,
            parsed,
            source=path,
            extra=extra,
            recipients=recipients,
            dry_run=dry_run,
            source_id=source_id,
            outage=outage,
            on_chunk=save,
            chunk=chunk,
        )
    finally:
        clean = await outage.finish(pub.stop)
    save(report.tally(), finished=report.stopped is None)
    return FileRun(report, clean)


async def parse_stoppable(
    parse: Callable[[threading.Event], ParseResult], outage: Outage, path: Path
) -> ParseResult:
    """`parse` in a thread, and its result or error. Asked to stop first (or cancelled),
    the parse is told to give up (a big file's checks end within a chunk); once it has
    ended: `Interrupted`."""
    give_up = threading.Event()
    parsing = asyncio.ensure_future(asyncio.to_thread(parse, give_up))
    stopping: asyncio.Future[object] = asyncio.ensure_future(outage.stopped())
    try:
        await asyncio.wait((parsing, stopping), return_when=asyncio.FIRST_COMPLETED)
        if parsing.done():
            return parsing.result()
        give_up.set()
        with suppress(Interrupted):
            await parsing
        raise Interrupted(f"interrupted while {path} was being parsed: nothing was sent")
    finally:
        stopping.cancel()
        give_up.set()  # a cancelled run leaves no parse going on either


async def _abandon(connecting: asyncio.Future[Publisher]) -> None:
    """Cancel a connection attempt the run no longer needs; a publisher it started is
    stopped (nothing was sent)."""
    connecting.cancel()
    try:
        pub = await connecting
    except BaseException:  # cancelled, or it had failed: nothing to stop
        return
    await pub.stop()


def check_resume(progress: ProgressFile, path: Path, *, resume: bool) -> RunProgress | None:
    """With --resume: the interrupted run of `path` (ConfigError if there is none, or the
    file changed since); without: a note if an interrupted run is superseded."""
    last = progress.load()
    unfinished = last is not None and not last.finished
    if resume:
        if last is None:
            raise ConfigError(
                f"nothing to resume: no earlier run of {path} here; run without --resume"
            )
        if last.finished:
            raise ConfigError(
                f"nothing to resume: the last run of {path} finished at {last.updated}"
            )
        if last.sha256 != file_digest(path):
            raise ConfigError(
                f"{path} changed since the interrupted run of {last.updated}; run without "
                "--resume to publish it as it is now (objects already sent are recognised)"
            )
        click.echo(
            f"jcu: resuming {path}: the run of {last.updated} handled {last.handled} of "
            f"{last.objects} objects ({last.stopped or 'killed'}); objects it sent are "
            "recognised and not sent again",
            err=True,
        )
    elif unfinished and last is not None:
        click.echo(
            f"jcu: an earlier run of {path} stopped after {last.handled} of {last.objects} "
            "objects; objects it sent are recognised and not sent again",
            err=True,
        )
    return last


def exit_stopped(run: FileRun) -> NoReturn:
    """After the summary of a run that stopped early: its reason as the error line, exit 1.
    A publisher Kafka kept from stopping is left behind without waiting (no clean-up is
    owed: the next start settles what it began)."""
    why = run.report.stopped or "stopped"
    if not run.clean:
        click.echo(f"jcu: error: {why}", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    if why.startswith("interrupted"):
        raise Interrupted(why)
    raise KafkaUnavailable(why)


def _who(outcome: Outcome) -> str:
    if outcome.status in ("skipped", "not sent"):
        return ""
    if not outcome.received_by:
        return "nobody"
    parts = []
    for org in outcome.received_by:
        removed = outcome.redacted.get(org)
        parts.append(f"{org} (without {', '.join(removed)})" if removed else org)
    return ", ".join(parts)


def _why(outcome: Outcome) -> str:
    if outcome.status in ("skipped", "not sent"):
        return outcome.reason
    if outcome.status == "already sent":
        return "sent before (same object and version)"
    if outcome.received_by:
        return ""
    return "withheld from everyone: " + ", ".join(outcome.rules())


#: Past this many objects the report is plain lines, not a table: rich measures every
#: cell of a table, about 0.3 ms a row, which was a quarter of a 20,000-object publish.
TABLE_ROWS = 500
_COLUMNS = ("object", "type", "status", "TLP", "message", "recipients", "why not")


def print_report(report: PublishReport) -> None:
    """Every input object: published (message id, who got what), withheld (the deciding
    rules) or skipped (reason). A dry run says who would get what. A file of more than
    `TABLE_ROWS` objects is listed one line an object, the same columns two spaces apart."""
    title = f"{report.source} ({report.format})"
    if report.dry_run:
        title += ", dry run: nothing sent"
    rows = [
        (o.source_id, o.type, o.status, o.tlp or "", o.message_id or "", _who(o), _why(o))
        for o in report.outcomes
    ]
    out = console()
    if len(rows) > TABLE_ROWS:
        _print_lines(title, rows)
    else:
        from rich.table import Table

        t = Table(title=title)
        for name in _COLUMNS:
            # ids are what people copy (`jcu retract`, `jcu receipts`): never cut them short
            folded = name in ("object", "message", "recipients", "why not")
            t.add_column(name, overflow="fold" if folded else "ellipsis")
        for row in rows:
            t.add_row(*row)
        out.print(t)
    for note in report.notes:
        out.print(f"note: {note}")
    click.echo(summary_line(report), err=True)


def _print_lines(title: str, rows: Sequence[tuple[str, ...]]) -> None:
    """`rows` under `_COLUMNS`, each column as wide as its widest cell but the last (ids
    whole, never folded: they are what people copy)."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS[:-1])]

    def line(cells: tuple[str, ...]) -> str:
        head = "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=False))
        return f"{head}  {cells[-1]}".rstrip()

    text = [title, line(_COLUMNS), *(line(r) for r in rows)]
    sys.stdout.write("\n".join(text) + "\n")


def summary_line(report: PublishReport) -> str:
    """What became of a file's objects, in one line: what an operator checks after a night
    of outages (sent now, sent before, withheld, skipped, not sent and why)."""
    verb = "would be published" if report.dry_run else "published"
    parts = [f"{len(report.published)} {verb}"]
    if report.already_sent:
        parts.append(f"{len(report.already_sent)} already sent")
    parts += [f"{len(report.withheld)} withheld from everyone", f"{len(report.skipped)} skipped"]
    if report.not_sent:
        parts.append(f"{len(report.not_sent)} not sent ({report.stopped or 'stopped'})")
    return f"{report.source}: " + ", ".join(parts)
