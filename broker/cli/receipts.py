"""`jcu receipts`: who received a message you sent, and when (verified receipts)."""

from __future__ import annotations

import asyncio

import click

from broker.cli._node import as_option, node_context
from broker.cli._options import connection_options
from broker.cli._output import console, emit_json, table
from broker.pep.receipts import ReceiptsRead, receipts_of, recipient_statuses, sent_index


@click.command()
@click.argument("message_id", required=False)
@as_option("The sender of the messages")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
def receipts(message_id: str | None, participant: str | None, as_json: bool) -> None:
    """Show what became of MESSAGE_ID per organisation: delivered (when), rejected (why),
    pending (no receipt yet), denied (by which rules), retracted. Without MESSAGE_ID,
    every signed receipt this node has, one per message and receiver. Receipts that cannot
    be believed (forged, signed for another receiver, ids not matching their Merkle root,
    naming a message never sent to their signer) are refused, each said on stderr with its
    reason. A wrong passphrase is an error."""
    ctx, me = node_context(participant)
    index = sent_index(ctx, me)
    try:
        got: ReceiptsRead = asyncio.run(receipts_of(ctx, me, message_id, sent=index))
        sent = index.get(message_id) if message_id is not None else None
    finally:
        index.close()
    for refused in got.refused:  # said, never counted
        click.echo(f"warning: {refused.line()}", err=True)
    views = list(got.views)
    if message_id is None:
        if as_json:
            emit_json([v.to_json() for v in views])
            return
        console().print(
            table(
                f"receipts for {me}",
                ["message", "receiver", "received", "status"],
                [[v.message_id, v.receiver, v.received.isoformat(), v.status] for v in views],
            )
        )
        if not views:
            click.echo("no receipts yet", err=True)
        return
    rows = recipient_statuses(sent, views)
    if as_json:
        emit_json(
            {
                "message_id": message_id,
                "known_here": sent is not None,
                "retracted": bool(sent and sent.retracted),
                "recipients": [r.to_json() for r in rows],
            }
        )
        return
    console().print(
        table(
            f"message {message_id}",
            ["organisation", "decided", "state", "received", "detail"],
            [
                [
                    r.org,
                    r.decided or "-",
                    r.state + (" (retracted)" if r.retracted else ""),
                    r.received.isoformat() if r.received else "",
                    r.detail,
                ]
                for r in rows
            ],
        )
    )
    if sent is None:
        click.echo(
            f"note: {me} has no record here of sending {message_id} (another host, or older "
            "than the sent index keeps): receipts only",
            err=True,
        )
