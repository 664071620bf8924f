"""`jcu publish`: share a record, or a SOC's STIX/MISP/CSV file, through policy, envelope, Kafka."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from broker.cli._labels import label_options, split_csv
from broker.cli._node import as_option, node_context
from broker.cli._options import (
    chunk_option,
    connection_options,
    eu_member_states,
    payload_type_option,
)
from broker.cli._outage import DEFAULT_GIVE_UP, GIVE_UP_ENV, Outage
from broker.cli._outage import give_up_after as give_up_after_setting
from broker.cli._output import emit_json, emit_json_items
from broker.cli._runtime import OnStop, run_until_signalled
from broker.errors import ConfigError

if TYPE_CHECKING:
    from broker.pep import PublishResult
    from connectors.soc import ParseResult
    from connectors.soc.publishing import PublishReport

# What only runs once the node is open (the enforcement point, its connectors, tables) is
# imported there: the keystore unlocks meanwhile (`node_context`), and nothing the run
# does not need is loaded (tests/broker/cli/test_startup.py).


def print_result(result: PublishResult) -> None:
    from broker.cli._output import console, table

    out = console()
    out.print(f"message {result.message_id} ({result.payload_type}, TLP:{result.labels.tlp})")
    if result.copies:
        out.print(
            table(
                "sent",
                ["community", "topic", "partition", "offset", "recipients", "redacted"],
                [
                    [
                        c.community,
                        c.topic,
                        c.partition,
                        c.offset,
                        ", ".join(c.recipients),
                        ", ".join(c.redacted_fields) or "-",
                    ]
                    for c in result.copies
                ],
            )
        )
    else:
        out.print("no organisation may receive this message; nothing was sent")
    if result.denied:
        out.print(
            table(
                "denied",
                ["organisation", "rules"],
                [[d.org, ", ".join(d.rules)] for d in result.denied],
            )
        )


def _one_input(
    record_path: Path | None, payload_type: str | None, files: dict[str, Path | None]
) -> tuple[str, Path]:
    """Exactly one of --record/--stix/--misp/--csv; returns (format, path), format 'record'."""
    given = [(k, v) for k, v in files.items() if v is not None]
    if record_path is not None:
        given.append(("record", record_path))
    if len(given) != 1:
        raise click.UsageError("give exactly one input: --record FILE, --stix, --misp or --csv")
    fmt, path = given[0]
    if fmt == "record" and payload_type is None:
        raise click.UsageError("--record needs --type")
    if fmt != "record" and payload_type is not None:
        raise click.UsageError(f"--type goes with --record; --{fmt} files say their own types")
    return fmt, path


_file_type = click.Path(dir_okay=False, path_type=Path)


@click.command()
@as_option("Publishing participant")
@click.option(
    "--record",
    "record_path",
    type=_file_type,
    default=None,
    help="JSON file with one record of --type.",
)
@payload_type_option(
    help="With --record: Indicator, IncidentReport, SituationReport (assistance: jcu assist)."
)
@click.option(
    "--stix",
    "stix_path",
    type=_file_type,
    default=None,
    help="A STIX 2.1 (or 2.0) bundle: every object is published, whole.",
)
@click.option(
    "--misp",
    "misp_path",
    type=_file_type,
    default=None,
    help="A MISP event export (JSON): every event is published, whole.",
)
@click.option(
    "--csv",
    "csv_path",
    type=_file_type,
    default=None,
    help="An indicator CSV (docs/connectors.md): every row.",
)
@label_options(tlp_required=False)
@click.option(
    "--to",
    "recipients",
    multiple=True,
    help="Name the recipients (comma-separated): only they may receive it.",
)
@click.option(
    "--max-size",
    type=click.IntRange(1),
    default=None,
    help="Largest input file in bytes (default 20 MiB).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Decide only: print per object who would receive what (with the live crisis "
    "state); send and record nothing.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Go on with an interrupted publish of this file (it must be unchanged). A plain "
    "re-run is safe too: objects already sent are recognised either way.",
)
@click.option(
    "--source-id",
    default=None,
    metavar="ID",
    help="The file's declared source id (default: its file name): a CSV row's identity is "
    "its content within this source, so the same row re-published is recognised.",
)
@click.option(
    "--give-up-after",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help=f"While Kafka is unreachable, give up after this long (env {GIVE_UP_ENV}; "
    f"default {DEFAULT_GIVE_UP:g}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@chunk_option
@connection_options
def publish(
    participant: str | None,
    record_path: Path | None,
    payload_type: str | None,
    stix_path: Path | None,
    misp_path: Path | None,
    csv_path: Path | None,
    tlp: str | None,
    handling: tuple[str, ...],
    categories: tuple[str, ...],
    personal_data: bool,
    exercise: str | None,
    incident: str | None,
    member_states: tuple[str, ...],
    recipients: tuple[str, ...],
    max_size: int | None,
    dry_run: bool,
    resume: bool,
    source_id: str | None,
    give_up_after: float | None,
    as_json: bool,
    chunk: int | None,
) -> None:
    """Publish a record, or every object of a STIX bundle, MISP event or CSV file.

    Each is decided per organisation, sealed per community, produced and audited.
    For files, --tlp is the default TLP of objects without a marking (it can only
    make an object stricter), --category adds to each object's categories, and
    the summary lists every input object as published (message id, who got it,
    what was removed from whose copy), withheld from everyone (the deciding
    rules), skipped (the reason), already sent (the same object version, sent
    before: a re-run after a crash sends nothing twice) or not sent (the run
    stopped first). Progress is written as it goes ($JCU_HOME/progress/), so a
    killed run can be re-run or resumed (--resume). Ctrl-C stops within seconds
    with the summary so far; while Kafka is unreachable the run says so and gives
    up after --give-up-after. Exit status 1 when nothing at all was sent, or the
    run stopped before the end.
    """
    fmt, path = _one_input(
        record_path, payload_type, {"stix": stix_path, "misp": misp_path, "csv": csv_path}
    )
    if fmt == "record" and (resume or source_id):
        raise click.UsageError("--resume and --source-id go with --stix, --misp or --csv")
    if dry_run and resume:
        raise click.UsageError("--dry-run sends nothing: there is nothing to resume")
    checked_states = tuple(eu_member_states(member_states))  # before any key is opened
    ctx, sender = node_context(participant)
    named = split_csv(recipients)
    give_up = give_up_after_setting(give_up_after)
    if fmt != "record":
        from broker.cli._progress import ProgressFile
        from broker.cli._soc import (
            ExtraLabels,
            FileRun,
            check_resume,
            exit_stopped,
            parse_input,
            print_report,
            run_file,
        )

        extra = ExtraLabels(handling, categories, personal_data, exercise, incident, checked_states)
        progress = None if dry_run else ProgressFile(ctx.settings.home, sender, path)
        if progress is not None:
            check_resume(progress, path, resume=resume)

        def parse(give_up: threading.Event) -> ParseResult:
            return parse_input(path, fmt=fmt, default_tlp=tlp, max_bytes=max_size, stop=give_up)

        async def main(on_stop: OnStop) -> FileRun:
            stop = asyncio.Event()
            on_stop(stop.set)
            return await run_file(
                ctx,
                sender,
                parse,
                path,
                Outage(ctx.settings.bootstrap, give_up, stop),
                extra=extra,
                recipients=tuple(named),
                dry_run=dry_run,
                source_id=source_id,
                progress=progress,
                chunk=chunk,
            )

        done = run_until_signalled(main)
        report: PublishReport = done.report
        if as_json:
            emit_json_items(report.json_head(), "objects", (o.to_json() for o in report.outcomes))
        else:
            print_report(report)
        if report.stopped is not None or not done.clean:
            exit_stopped(done)
        if report.sent_nothing:
            what = "would reach" if dry_run else "reached"
            raise ConfigError(
                f"{path}: nothing {what} any organisation ({len(report.withheld)} objects "
                f"withheld from everyone, {len(report.skipped)} skipped); see the rules above, "
                "or `jcu policy explain`"
            )
        return

    from broker.cli._labels import labelled_record
    from broker.cli._soc import connect_publisher

    assert payload_type is not None  # noqa: S101 - narrows for mypy: checked by the caller
    if tlp is None:
        raise click.UsageError("--record needs --tlp")
    if dry_run:
        raise click.UsageError("--dry-run goes with --stix, --misp or --csv")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    record, labels = labelled_record(
        ctx.envelope.store,
        payload_type,
        raw,
        str(path),
        tlp=tlp,
        handling=handling,
        categories=categories,
        personal_data=personal_data,
        exercise=exercise,
        incident=incident,
        member_states=member_states,
    )

    async def run(on_stop: OnStop) -> PublishResult:
        stop = asyncio.Event()
        on_stop(stop.set)
        outage = Outage(ctx.settings.bootstrap, give_up, stop)
        pub = await connect_publisher(outage, sender, ctx)
        try:
            return await outage.guard(
                pub.publish(payload_type, record, labels=labels, recipients=named)
            )
        finally:
            await outage.finish(pub.stop)

    result = run_until_signalled(run)
    if as_json:
        emit_json(result.to_json())
    else:
        print_result(result)
