"""`jcu seal` and `jcu open`: one envelope by hand, as this node's organisation.

`seal` reads one JSON record and writes envelope bytes. It is behind the same
door as `jcu publish`: every named recipient must be allowed by the policy
(with the live crisis state), and the decisions are written to the sender's
audit log (`<sender>/seal`) before the envelope is; so it needs Kafka. `open`
reads envelope bytes and prints the record and its verified sender, offline.
Both bind the topic:
by default `jcu.<sender's community>.<stream of the type>` (exercise topics for
exercise traffic), `--topic` overrides it on either side.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

import click

from broker import config
from broker.audit import DecisionSet
from broker.cli._labels import label_options, labelled_record, split_csv
from broker.cli._node import acting_as, as_option, node_context
from broker.cli._options import connection_options, payload_type_option
from broker.cli._output import emit_json
from broker.envelope import default_topic, read_header
from broker.envelope.context import EnvelopeContext
from broker.errors import ConfigError, Rejected, Unauthorised
from broker.pep.publisher import policy_message
from broker.pep.registry_audit import log_registry
from broker.pep.state_feeds import StateFeeds
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
@as_option("Sending participant")
@click.option(
    "--to",
    "recipients",
    required=True,
    multiple=True,
    help="Recipients, comma-separated (repeatable).",
)
@payload_type_option(
    required=True, help="Payload type: Indicator, IncidentReport, SituationReport, ..."
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
@connection_options
def seal(
    participant: str | None,
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
    """Seal one JSON record for the named recipients: encrypt for each, sign as this node.

    Refused, naming the rule, if the policy does not allow a recipient; the decisions
    are audited before the envelope is written.
    """
    pep, sender = node_context(participant)
    ctx = pep.envelope
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
    named = split_csv(recipients)

    async def run() -> bytes:
        async with StateFeeds(pep) as feeds:
            short = ctx.store.full_name(payload_type).rpartition(".")[2]
            msg = policy_message(sender, short, labels, named)
            decisions = pep.policy.decide_all(msg, crisis_incidents=feeds.crisis.active_incidents())
            refused = [d for d in decisions if d.org in named and d.decision != "allow"]
            if refused:
                raise Unauthorised(
                    "the policy does not allow "
                    + "; ".join(f"{d.org} ({', '.join(d.rules) or d.decision})" for d in refused)
                    + ": nothing sealed"
                )
            sealed = ctx.sealer(sender).seal(
                payload_type,
                record,
                recipients=named,
                topic=bound,
                labels=labels,
                target_community=community,
                validity=timedelta(hours=validity_hours),
            )
            audit = pep.audit_log(sender, "seal")
            async with audit:
                await log_registry(pep.envelope.trusted, audit)
                await audit.append_sets(
                    [
                        DecisionSet(
                            "publish",
                            sealed.message_id,
                            tuple(decisions),
                            content_hash=audit.content_hash(ctx.store.encode(short, record)),
                            labels=labels.to_avro(),
                            policy_bundle_hash=pep.policy.bundle_hash,
                        )
                    ]
                )
            return sealed.data

    _write(out_path, asyncio.run(run()))


@click.command("open")
@as_option("Receiving participant")
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
def open_(participant: str | None, topic: str | None, in_path: Path | None, as_json: bool) -> None:
    """Verify and decrypt one envelope as a participant; print the record and its sender.

    Offline opening remembers no message ids (no replay store); the subscriber does.
    """
    settings = config.load()
    me = acting_as(participant, settings)
    ctx = EnvelopeContext.load(settings)
    data = _read(in_path)
    try:
        if topic is None:
            header = read_header(ctx.store, data)
            topic = default_topic(
                ctx.keyring.community_of(header.sender),
                header.payload_type,
                exercise=header.exercise,
            )
        opened = ctx.opener(me).open(data, topic=topic)
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
