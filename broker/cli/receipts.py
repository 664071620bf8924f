"""`jcu receipts`: who received a message you sent, and when (verified receipts)."""

from __future__ import annotations

import asyncio

import click

from broker import config
from broker.cli._output import console, emit_json, table
from broker.pep.context import PepContext
from broker.pep.receipts import ReceiptView, read_receipts


@click.command()
@click.argument("message_id", required=False)
@click.option("--as", "participant", required=True, help="The sender of the message.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def receipts(message_id: str | None, participant: str, as_json: bool) -> None:
    """Show the signed delivery receipts for MESSAGE_ID (all messages if omitted)."""
    ctx = PepContext.load(config.load())
    views: list[ReceiptView] = asyncio.run(read_receipts(ctx, participant, message_id))
    if as_json:
        emit_json([v.to_json() for v in views])
        return
    title = f"receipts for {message_id}" if message_id else f"receipts for {participant}"
    console().print(
        table(
            title,
            ["message", "receiver", "received", "status"],
            [[v.message_id, v.receiver, v.received.isoformat(), v.status] for v in views],
        )
    )
    if not views:
        click.echo("no receipts yet", err=True)
