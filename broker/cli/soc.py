"""`jcu soc watch`: a SOC's drop folder, every STIX/MISP/CSV file put into it is published."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from broker.cli._labels import label_options, split_csv
from broker.cli._node import as_option, node_context
from broker.cli._options import chunk_option, connection_options, eu_member_states
from broker.cli._outage import DEFAULT_GIVE_UP, GIVE_UP_ENV, Outage
from broker.cli._outage import give_up_after as give_up_after_setting
from broker.cli._progress import file_digest
from broker.cli._runtime import OnStop, run_until_signalled
from broker.cli._soc import FileRun, connect_publisher
from broker.errors import Interrupted, KafkaUnavailable

if TYPE_CHECKING:
    from connectors.soc import ParseResult
    from connectors.soc.publishing import PublishReport


def _no_report(source: Path, why: str) -> PublishReport:
    """The report of a run stopped before it had any outcome (`source`: the folder, or
    the file whose parse was interrupted)."""
    from connectors.soc.publishing import PublishReport

    return PublishReport(str(source), "-", (), stopped=why)


@click.group()
def soc() -> None:
    """SOC connector: publish STIX bundles, MISP events and indicator CSVs."""


@soc.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@as_option("Publishing participant")
@label_options(tlp_required=False)
@click.option("--to", "recipients", multiple=True, help="Name the recipients (comma-separated).")
@click.option("--once", is_flag=True, help="Handle the files there now, then exit.")
@click.option(
    "--interval", type=float, default=2.0, show_default=True, help="Seconds between scans."
)
@click.option(
    "--max-size", type=click.IntRange(1), default=None, help="Largest file in bytes (20 MiB)."
)
@click.option(
    "--give-up-after",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help=f"While Kafka is unreachable, give up after this long (env {GIVE_UP_ENV}; "
    f"default {DEFAULT_GIVE_UP:g}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per file.")
@chunk_option
@connection_options
def watch(
    directory: Path,
    participant: str | None,
    tlp: str | None,
    handling: tuple[str, ...],
    categories: tuple[str, ...],
    personal_data: bool,
    exercise: str | None,
    incident: str | None,
    member_states: tuple[str, ...],
    recipients: tuple[str, ...],
    once: bool,
    interval: float,
    max_size: int | None,
    give_up_after: float | None,
    as_json: bool,
    chunk: int | None,
) -> None:
    """Publish every file dropped into DIRECTORY (format from extension and content).

    A handled file moves to DIRECTORY/done/ with <name>.summary.json (every input
    object, published or skipped with the reason); a file that cannot be read
    moves to DIRECTORY/failed/ with <name>.reason.txt, and the watch goes on.
    Files starting with '.' or ending in .tmp/.part are left until renamed.
    An object sent before (same object and version) is not sent again, so a file
    dropped twice, or left by a killed watch, is safe to handle again. Ctrl-C
    stops within seconds (the file in hand stays, with its summary so far);
    while Kafka is unreachable the watch says so and gives up after
    --give-up-after, exit status 1 either way.
    """
    from broker.cli._progress import ProgressFile
    from broker.cli._soc import (
        ExtraLabels,
        exit_stopped,
        parse_input,
        parse_stoppable,
        print_report,
        publish_items,
    )
    from connectors.dropfolder import DropFolder, Processed
    from connectors.dropfolder import watch as watch_folder

    checked_states = tuple(eu_member_states(member_states))  # before any key is opened
    ctx, sender = node_context(participant)
    give_up = give_up_after_setting(give_up_after)
    folder = DropFolder(directory)
    extra = ExtraLabels(handling, categories, personal_data, exercise, incident, checked_states)
    named = tuple(split_csv(recipients))
    reports: dict[str, PublishReport] = {}

    def report(done: Processed) -> None:
        if as_json:  # one JSON object per line and file, as each file is done
            click.echo(json.dumps(done.to_json(), sort_keys=True, default=str))
        elif done.ok and done.name in reports:
            print_report(reports.pop(done.name))
        elif not done.ok:
            click.echo(
                f"jcu: {done.name} failed, moved to {done.moved_to}: {done.reason}", err=True
            )

    stopped: list[FileRun] = []

    async def run(on_stop: OnStop) -> list[Processed]:
        stop = asyncio.Event()
        on_stop(stop.set)
        outage = Outage(ctx.settings.bootstrap, give_up, stop)
        try:
            pub = await connect_publisher(outage, sender, ctx)
        except (Interrupted, KafkaUnavailable) as exc:
            stopped.append(FileRun(_no_report(directory, str(exc))))
            return []
        clean = True
        processed: list[Processed] = []

        async def handle(path: Path) -> dict[str, object]:
            def parse(give_up: threading.Event) -> ParseResult:
                return parse_input(
                    path, fmt=None, default_tlp=tlp, max_bytes=max_size, stop=give_up
                )

            try:
                parsed = await parse_stoppable(parse, outage, path)
            except Interrupted as exc:  # the file stays in the folder, for the next run
                stopped.append(FileRun(_no_report(path, str(exc))))
                raise
            progress = ProgressFile(ctx.settings.home, sender, path)
            digest = file_digest(path)
            objects = len(parsed.items) + len(parsed.skipped)
            result = await publish_items(
                pub,
                ctx.envelope.store,
                parsed,
                source=path,
                extra=extra,
                recipients=named,
                outage=outage,
                on_chunk=lambda r: progress.save(digest, r, objects),
                chunk=chunk,
            )
            progress.save(digest, result.tally(), objects, finished=result.stopped is None)
            reports[path.name] = result
            if result.stopped is not None:
                stopped.append(FileRun(result))
                raise (
                    Interrupted(result.stopped)
                    if result.stopped.startswith("interrupted")
                    else KafkaUnavailable(result.stopped)
                )
            return result.to_json()

        def seen(done: Processed) -> None:
            processed.append(done)
            report(done)

        try:
            if not once:
                click.echo(f"{sender}: watching {directory}", err=True)
            await watch_folder(
                folder, handle, once=once, interval=interval, stop=stop, on_processed=seen
            )
        except (Interrupted, KafkaUnavailable):
            pass  # said below, with the file's summary so far
        finally:
            clean = await outage.finish(pub.stop)
        if stopped and not clean:
            stopped[-1] = FileRun(stopped[-1].report, clean=False)
        return processed

    processed = run_until_signalled(run)
    failed = sum(1 for p in processed if not p.ok)
    if not as_json:
        click.echo(
            f"{directory}: {len(processed) - failed} file(s) done, {failed} failed", err=True
        )
    if stopped:
        last = stopped[-1]
        if as_json:
            click.echo(json.dumps(last.report.to_json(), sort_keys=True, default=str))
        elif last.report.outcomes:
            print_report(last.report)
        exit_stopped(last)
