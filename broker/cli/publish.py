"""`jcu publish`: share one record as a participant, through policy, envelope and Kafka."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from broker import config
from broker.cli._labels import build_labels, label_options, split_csv
from broker.cli._output import console, emit_json, table
from broker.errors import ConfigError
from broker.pep import Publisher, PublishResult
from broker.pep.context import PepContext
from broker.record_json import from_json


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


@click.command()
@click.option("--as", "sender", required=True, help="Publishing participant (registry id).")
@click.option(
    "--record",
    "record_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSON file with one record of --type.",
)
@click.option(
    "--type",
    "payload_type",
    required=True,
    help="Payload type: Indicator, IncidentReport, SituationReport, AssistanceRequest.",
)
@label_options()
@click.option(
    "--to",
    "recipients",
    multiple=True,
    help="Name the recipients (comma-separated): only they may receive it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def publish(
    sender: str,
    record_path: Path,
    payload_type: str,
    tlp: str,
    handling: tuple[str, ...],
    categories: tuple[str, ...],
    personal_data: bool,
    exercise: str | None,
    incident: str | None,
    member_states: tuple[str, ...],
    recipients: tuple[str, ...],
    as_json: bool,
) -> None:
    """Publish one record: decide per organisation, seal per community, produce, audit."""
    ctx = PepContext.load(config.load())
    try:
        obj = json.loads(record_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {record_path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{record_path} is not JSON: {exc}") from None
    record = from_json(ctx.envelope.store, payload_type, obj)
    labels = build_labels(
        ctx.envelope.store,
        payload_type,
        record,
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
            return await pub.publish(
                payload_type, record, labels=labels, recipients=split_csv(recipients)
            )

    result = asyncio.run(run())
    if as_json:
        emit_json(result.to_json())
    else:
        print_result(result)
