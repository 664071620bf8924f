"""`jcu dlq`: list, show and replay dead letters (records a subscriber refused).

Reading `jcu.dlq` follows the Kafka walls: the platform's operators and
auditors may, an organisation may not (JCU_KAFKA_CONFIG: their client file).
`list` and `show` print headers, never decrypted content. `replay` runs on the
receiving organisation's own node (only it can open its records): it reads the
dead letters with a reader's client file (`--reader`, an operator's or
auditor's), and checks each again exactly as a fresh delivery at the position
it came from, audited in the node's `<participant>/replay` log, into the sink
given as for `jcu subscribe`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from broker import config
from broker.cli._node import as_option
from broker.cli._options import connection_options
from broker.cli._output import console, emit_json, table
from broker.errors import ConfigError
from broker.kafka.connection import KafkaConnection


def _reader(path: str | None) -> KafkaConnection:
    from broker.kafka.connection import read_client_file

    if path is None:
        return config.load().kafka
    return read_client_file(Path(path).expanduser())


@click.group()
def dlq() -> None:
    """Dead letters: records a subscriber refused (bad signature, policy, replay...), with
    the reason. Readable by the platform's operators and auditors."""


@dlq.command("list")
@click.option("--participant", default=None, help="Only the dead letters of this receiver.")
@click.option("--reason", default=None, help="Only those refused for this reason.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
def list_(participant: str | None, reason: str | None, as_json: bool) -> None:
    """Every dead letter: id, reason, where it was refused, sender, time."""
    from broker.pep.dead_letters import read_dead_letters

    letters = asyncio.run(
        read_dead_letters(config.load().kafka, participant=participant, reason=reason)
    )
    if as_json:
        emit_json([x.to_json() for x in letters])
        return
    rows = [
        [
            x.id,
            x.reason,
            x.participant,
            f"{x.source[0]}[{x.source[1]}]@{x.source[2]}" if x.source else "?",
            (x.sender or "?") + ("" if x.sender_verified or not x.sender else " (claimed)"),
            x.time.isoformat(timespec="seconds") if x.time else "?",
        ]
        for x in letters
    ]
    console().print(
        table(
            f"dead letters: {len(letters)}",
            ["id", "reason", "receiver", "refused at", "sender", "time"],
            rows,
        )
    )


@dlq.command()
@click.argument("letter_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
def show(letter_id: str, as_json: bool) -> None:
    """One dead letter: its headers, the reason and error, size and digest (the record is
    sealed: its content is for its recipient's node alone)."""
    from broker.pep.dead_letters import read_dead_letters

    (letter,) = asyncio.run(read_dead_letters(config.load().kafka, ids=[letter_id]))
    data = letter.to_json()
    if as_json:
        emit_json(data)
        return
    for name in ("id", "reason", "error", "participant", "message_id", "sender", "time"):
        click.echo(f"{name}: {data[name]}")
    source = data["source"]
    if source:
        click.echo(f"refused at: {source['topic']}[{source['partition']}]@{source['offset']}")
    kept = "kept" if data["kept"] else "not kept (too large: digest only)"
    click.echo(f"record: {data['size']} bytes, sha256 {data['sha256']}, {kept}")
    for key, value in data["headers"].items():
        click.echo(f"header {key}: {value}")


@dlq.command()
@as_option("Receiving participant", "requested")
@click.argument("letter_ids", metavar="ID...", nargs=-1)
@click.option(
    "--reason", default=None, help="Replay every dead letter of this node refused for this reason."
)
@click.option(
    "--reader",
    default=None,
    metavar="CLIENT_FILE",
    help="Kafka client file of a principal that may read jcu.dlq (an operator or auditor); "
    "default JCU_KAFKA_CONFIG. What the replay writes (audit, receipts) goes as this node.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "stix", "misp", "misp-feed", "taxii"]),
    default="jsonl",
    show_default=True,
    help="Where what passes goes, as for `jcu subscribe`.",
)
@click.option("--out", default="-", show_default=True, help="Directory, or - for stdout.")
@click.option("--webhook", default=None, metavar="URL", help="POST what passes to URL.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@connection_options
def replay(
    requested: str | None,
    letter_ids: tuple[str, ...],
    reason: str | None,
    reader: str | None,
    fmt: str,
    out: str,
    webhook: str | None,
    as_json: bool,
) -> None:
    """Check dead letters again, as this node's participant, exactly as fresh deliveries
    (signature, replay window, policy, registry); what passes is delivered, what does not
    is refused again; every decision audited in this node's `<participant>/replay` log."""
    from broker.cli._node import node_context
    from broker.pep import Subscriber
    from broker.pep.dead_letters import held_record, read_dead_letters
    from connectors.isac.factory import make_sink

    if bool(letter_ids) == bool(reason):
        raise ConfigError("give dead-letter ids, or --reason R (one or the other)")
    if as_json and out == "-" and webhook is None:
        raise ConfigError("--json prints the outcome on stdout: give --out DIR for the records")
    settings = config.load()
    ctx, participant = node_context(requested)
    kafka = _reader(reader)
    letters = asyncio.run(
        read_dead_letters(
            kafka,
            ids=letter_ids,
            reason=reason,
            participant=participant if reason else None,
        )
    )
    others = [x.id for x in letters if x.participant != participant]
    if others:
        raise ConfigError(
            f"dead letter(s) {', '.join(others)} were refused by another organisation's node; "
            f"this node ({participant}) can only replay its own"
        )
    records = [held_record(x) for x in letters]
    sink = make_sink(fmt, out, participant, settings, webhook=webhook)

    async def run() -> tuple[int, list[tuple[str, str, str]], int]:
        sub = Subscriber(
            participant,
            ctx,
            sink,
            group_id=f"{participant}.replay",
            audit=ctx.audit_log(participant, "replay"),
        )
        await sub.start(consume=False)
        try:
            stats = await sub.replay(records)
        finally:
            await sub.stop()
        return stats.delivered, list(sub.replay_refusals), stats.duplicates

    delivered, refused, duplicates = asyncio.run(run())
    if as_json:
        emit_json(
            {
                "replayed": len(records),
                "delivered": delivered,
                "already_delivered": duplicates,
                "refused": [{"message_id": m, "reason": r, "error": e} for m, r, e in refused],
            }
        )
    else:
        for mid, why, error in refused:
            click.echo(f"{mid}: refused again ({why}): {error}", err=True)
        click.echo(
            f"{participant}: replayed {len(records)}, delivered {delivered}, "
            f"refused again {len(refused)}, already delivered {duplicates}",
            err=True,
        )
