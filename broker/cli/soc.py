"""`jcu soc watch`: a SOC's drop folder, every STIX/MISP/CSV file put into it is published."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from broker.cli._labels import label_options, split_csv
from broker.cli._node import as_option, node_context
from broker.cli._runtime import OnStop, run_until_signalled
from broker.pep import Publisher

if TYPE_CHECKING:
    from connectors.soc.publishing import PublishReport


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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per file.")
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
    as_json: bool,
) -> None:
    """Publish every file dropped into DIRECTORY (format from extension and content).

    A handled file moves to DIRECTORY/done/ with <name>.summary.json (every input
    object, published or skipped with the reason); a file that cannot be read
    moves to DIRECTORY/failed/ with <name>.reason.txt, and the watch goes on.
    Files starting with '.' or ending in .tmp/.part are left until renamed.
    """
    from broker.cli._soc import ExtraLabels, print_report, publish_file
    from connectors.dropfolder import DropFolder, Processed
    from connectors.dropfolder import watch as watch_folder

    ctx, sender = node_context(participant)
    folder = DropFolder(directory)
    extra = ExtraLabels(handling, categories, personal_data, exercise, incident, member_states)
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

    async def run(on_stop: OnStop) -> list[Processed]:
        stop = asyncio.Event()
        on_stop(stop.set)
        async with Publisher(sender, ctx) as pub:

            async def handle(path: Path) -> dict[str, object]:
                result = await publish_file(
                    pub,
                    ctx.envelope.store,
                    path,
                    fmt=None,
                    default_tlp=tlp,
                    extra=extra,
                    recipients=named,
                    max_bytes=max_size,
                )
                reports[path.name] = result
                return result.to_json()

            if not once:
                click.echo(f"{sender}: watching {directory}", err=True)
            return await watch_folder(
                folder, handle, once=once, interval=interval, stop=stop, on_processed=report
            )

    processed = run_until_signalled(run)
    failed = sum(1 for p in processed if not p.ok)
    if not as_json:
        click.echo(
            f"{directory}: {len(processed) - failed} file(s) done, {failed} failed", err=True
        )
