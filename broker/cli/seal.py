"""`jcu seal` and `jcu open`: the envelope offline, no Kafka needed.

`seal` reads one JSON record and writes envelope bytes; `open` reads envelope
bytes and prints the record and its verified sender. Both bind the topic:
by default `jcu.<sender's community>.<stream of the type>` (exercise topics for
exercise traffic), `--topic` overrides it on either side.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import click

from broker import config
from broker.cli._labels import label_options, labelled_record, split_csv
from broker.cli._output import emit_json
from broker.envelope import default_topic, read_header
from broker.envelope.context import EnvelopeContext
from broker.errors import ConfigError, Rejected
from broker.record_json import to_json


def _read(path: Path | None) -> bytes:
    if path is None:
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _write(path: Path | None, data: bytes) -> None:
    if path is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


@click.command()
@click.option("--as", "sender", required=True, help="Sending participant (registry id).")
@click.option(
    "--to",
    "recipients",
    required=True,
    multiple=True,
    help="Recipients, comma-separated (repeatable).",
)
@click.option(
    "--type",
    "payload_type",
    required=True,
    help="Payload type: Indicator, IncidentReport, SituationReport, ...",
)
@label_options()
@click.option("--community", default=None, help="Target community (default: the sender's).")
@click.option(
    "--topic", default=None, help="Topic to bind (default: jcu.<sender community>.<stream>)."
)
@click.option(
    "--validity-hours",
    type=click.IntRange(1, 24 * 30),
    default=24 * 7,
    show_default=True,
    help="Hours until the record expires.",
)
@click.option(
    "--in",
    "in_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON record to seal (default: stdin).",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the envelope bytes (default: stdout).",
)
def seal(
    sender: str,
    recipients: tuple[str, ...],
    payload_type: str,
    tlp: str,
    handling: tuple[str, ...],
    categories: tuple[str, ...],
    personal_data: bool,
    exercise: str | None,
    incident: str | None,
    member_states: tuple[str, ...],
    community: str | None,
    topic: str | None,
    validity_hours: int,
    in_path: Path | None,
    out_path: Path | None,
) -> None:
    """Seal one JSON record for recipients: encrypt for each, sign as the sender."""
    ctx = EnvelopeContext.load(config.load())
    record, labels = labelled_record(
        ctx.store,
        payload_type,
        _read(in_path),
        str(in_path or "standard input"),
        tlp=tlp,
        handling=handling,
        categories=categories,
        personal_data=personal_data,
        exercise=exercise,
        incident=incident,
        member_states=member_states,
    )
    bound = topic or default_topic(
        ctx.keyring.community_of(sender), payload_type, exercise=exercise is not None
    )
    sealed = ctx.sealer(sender).seal(
        payload_type,
        record,
        recipients=split_csv(recipients),
        topic=bound,
        labels=labels,
        target_community=community,
        validity=timedelta(hours=validity_hours),
    )
    _write(out_path, sealed.data)


@click.command("open")
@click.option("--as", "participant", required=True, help="Open as this participant (registry id).")
@click.option(
    "--topic",
    default=None,
    help="Topic the record was read from (default: jcu.<sender community>.<stream>).",
)
@click.option(
    "--in",
    "in_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Envelope bytes (default: stdin).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: verified sender, header, labels and record.",
)
def open_(participant: str, topic: str | None, in_path: Path | None, as_json: bool) -> None:
    """Verify and decrypt one envelope as a participant; print the record and its sender.

    Offline opening remembers no message ids (no replay store); the subscriber does.
    """
    ctx = EnvelopeContext.load(config.load())
    data = _read(in_path)
    try:
        if topic is None:
            header = read_header(ctx.store, data)
            topic = default_topic(
                ctx.keyring.community_of(header.sender),
                header.payload_type,
                exercise=header.exercise,
            )
        opened = ctx.opener(participant).open(data, topic=topic)
    except Rejected as exc:
        raise type(exc)(f"rejected ({exc.reason}): {exc}") from None
    record = to_json(opened.record)
    if as_json:
        emit_json(
            {
                "verified_sender": opened.sender,
                "header": opened.header.to_json(),
                "labels": opened.labels.to_json(),
                "record": record,
            }
        )
        return
    click.echo(json.dumps(record, indent=2, ensure_ascii=False))
    click.echo(
        f"verified: {opened.payload_type} {opened.message_id} from {opened.sender} "
        f"(key {opened.sender_key_id}), TLP:{opened.labels.tlp}, topic {topic}",
        err=True,
    )
