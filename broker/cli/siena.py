"""`jcu siena inbox | deliver`: SIENA-style case messages in and out of the broker.

Case messages travel as `CaseMessage` on the `assistance` stream of the sender's
community (`jcu.law_enforcement.assistance` for Europol). The file format is in
docs/connectors.md; the connector code in `connectors/siena/`, imported only
when a verb runs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from broker.cli._node import as_option, node_context
from broker.cli._options import category_option, connection_options
from broker.cli._output import emit_json
from broker.cli._runtime import OnStop, run_until_signalled
from broker.cli._workflows import node_workflows
from broker.pep import Publisher, Subscriber, SubscriberStats
from broker.pep.subscriber import receive_side


@click.group()
def siena() -> None:
    """SIENA-style connector: publish case message files, deliver them into a mailbox."""


@siena.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@as_option("Sending participant; must be each file's sender")
@category_option(
    help="Category of the cases (repeatable): TLP:AMBER needs one the recipients' mandates cover."
)
@click.option("--watch", "keep_watching", is_flag=True, help="Keep watching DIRECTORY.")
@click.option(
    "--interval", type=float, default=2.0, show_default=True, help="Seconds between scans."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per file.")
@connection_options
def inbox(
    directory: Path,
    participant: str | None,
    categories: tuple[str, ...],
    keep_watching: bool,
    interval: float,
    as_json: bool,
) -> None:
    """Publish every case message file in DIRECTORY as a CaseMessage.

    The file's recipients are the named recipients and its handling codes the
    labels (H2/H3: nobody else may receive it). Published files move to
    DIRECTORY/done/, refused ones (bad file, other sender) to DIRECTORY/failed/
    with <name>.reason.txt.
    """
    from connectors.dropfolder import DropFolder, Processed, watch
    from connectors.siena.mailbox import publish_case_file

    ctx, sender = node_context(participant)
    folder = DropFolder(directory)

    def report(done: Processed) -> None:
        if as_json:  # one JSON object per line and file, as each file is done
            click.echo(json.dumps(done.to_json(), sort_keys=True, default=str))
        elif done.ok and done.summary is not None:
            s = done.summary
            click.echo(
                f"{done.name}: message {s['message_id']} ({s['case_reference']}) "
                f"to {', '.join(s['recipients']) or 'nobody'}"
            )
        else:
            click.echo(
                f"jcu: {done.name} refused, moved to {done.moved_to}: {done.reason}", err=True
            )

    async def run(on_stop: OnStop) -> list[Processed]:
        stop = asyncio.Event()
        on_stop(stop.set)
        async with Publisher(sender, ctx) as pub:

            async def handle(path: Path) -> dict[str, Any]:
                return await publish_case_file(pub, path, categories=categories)

            return await watch(
                folder,
                handle,
                once=not keep_watching,
                interval=interval,
                stop=stop,
                on_processed=report,
            )

    processed = run_until_signalled(run)
    if not as_json:
        failed = sum(1 for p in processed if not p.ok)
        click.echo(f"{directory}: {len(processed) - failed} sent, {failed} refused", err=True)


@siena.command()
@as_option("Receiving participant", "requested")
@click.option(
    "--mailbox",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for delivered case messages (other payloads go to MAILBOX/other/).",
)
@click.option("--once", is_flag=True, help="Drain what is on the topics now, then exit.")
@click.option(
    "--group",
    default=None,
    help="Consumer group, named <participant>.<channel> (default <participant>.subscriber).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
@connection_options
def deliver(
    requested: str | None, mailbox: Path, once: bool, group: str | None, as_json: bool
) -> None:
    """Receive as this node's organisation; write each case message into the mailbox and
    send a receipt."""
    from connectors.siena.mailbox import MailboxSink

    ctx, participant = node_context(requested)
    mailbox.mkdir(parents=True, exist_ok=True)
    sink = MailboxSink(mailbox)

    async def run(on_stop: OnStop) -> SubscriberStats:
        sub = Subscriber(
            participant,
            ctx,
            sink,
            group_id=group,
            audit=ctx.audit_log(participant, receive_side(participant, group)),
            receipts=True,
            workflows=workflows,
        )
        on_stop(sub.request_stop)
        async with sub:
            if not once:
                click.echo(f"{participant}: delivering into {mailbox}", err=True)
            return await sub.run(until_idle=once)

    with node_workflows(ctx, participant) as workflows:
        stats = run_until_signalled(run)
    if as_json:
        emit_json({**stats.to_json(), "case_messages": len(sink.written)})
    else:
        click.echo(
            f"{participant}: {len(sink.written)} case message(s) into {mailbox}, "
            f"{stats.delivered} delivered in all, rejected {stats.rejected_total}",
            err=True,
        )
