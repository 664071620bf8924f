"""`jcu publish`: share a record, or a SOC's STIX/MISP/CSV file, through policy, envelope, Kafka."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import click

from broker.cli._labels import label_options, labelled_record, split_csv
from broker.cli._node import as_option, node_context
from broker.cli._output import console, emit_json, table
from broker.errors import ConfigError
from broker.pep import Publisher, PublishResult

if TYPE_CHECKING:
    from connectors.soc.publishing import PublishReport


def print_result(result: PublishResult) -> None:
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
@click.option(
    "--type",
    "payload_type",
    default=None,
    help="With --record: Indicator, IncidentReport, SituationReport (assistance: jcu assist).",
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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
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
    as_json: bool,
) -> None:
    """Publish a record, or every object of a STIX bundle, MISP event or CSV file.

    Each is decided per organisation, sealed per community, produced and audited.
    For files, --tlp is the default TLP of objects without a marking (it can only
    make an object stricter), --category adds to each object's categories, and
    the summary lists every input object as published (message id, who got it,
    what was removed from whose copy), withheld from everyone (the deciding
    rules) or skipped (the reason). Exit status 1 when nothing at all was sent.
    """
    fmt, path = _one_input(
        record_path, payload_type, {"stix": stix_path, "misp": misp_path, "csv": csv_path}
    )
    ctx, sender = node_context(participant)
    named = split_csv(recipients)
    if fmt != "record":
        from broker.cli._soc import ExtraLabels, parse_input, print_report, publish_items

        extra = ExtraLabels(handling, categories, personal_data, exercise, incident, member_states)
        parsed = parse_input(path, fmt=fmt, default_tlp=tlp, max_bytes=max_size)

        async def run_file() -> PublishReport:
            async with Publisher(sender, ctx) as pub:
                return await publish_items(
                    pub,
                    ctx.envelope.store,
                    parsed,
                    source=path,
                    extra=extra,
                    recipients=tuple(named),
                    dry_run=dry_run,
                )

        report = asyncio.run(run_file())
        if as_json:
            emit_json(report.to_json())
        else:
            print_report(report)
        if report.sent_nothing:
            what = "would reach" if dry_run else "reached"
            raise ConfigError(
                f"{path}: nothing {what} any organisation ({len(report.withheld)} objects "
                f"withheld from everyone, {len(report.skipped)} skipped); see the rules above, "
                "or `jcu policy explain`"
            )
        return

    assert payload_type is not None
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

    async def run() -> PublishResult:
        async with Publisher(sender, ctx) as pub:
            return await pub.publish(payload_type, record, labels=labels, recipients=named)

    result = asyncio.run(run())
    if as_json:
        emit_json(result.to_json())
    else:
        print_result(result)
