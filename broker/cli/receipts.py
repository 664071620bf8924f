"""`jcu receipts`: who received a message you sent, and when (verified receipts)."""

from __future__ import annotations

import asyncio

import click

from broker.cli._node import as_option, node_context
from broker.cli._output import console, emit_json, table
from broker.pep.receipts import ReceiptView, read_receipts


@click.command()
@click.argument("message_id", required=False)
@as_option("The sender of the messages")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def receipts(message_id: str | None, participant: str | None, as_json: bool) -> None:
    """Show the signed delivery receipts for MESSAGE_ID (all messages if omitted)."""
    ctx, me = node_context(participant)
    views: list[ReceiptView] = asyncio.run(read_receipts(ctx, me, message_id))
    if as_json:
        emit_json([v.to_json() for v in views])
        return
    title = f"receipts for {message_id}" if message_id else f"receipts for {me}"
    console().print(
        table(
            title,
            ["message", "receiver", "received", "status"],
            [[v.message_id, v.receiver, v.received.isoformat(), v.status] for v in views],
        )
    )
    if not views:
        click.echo("no receipts yet", err=True)
