"""`jcu retract`: withdraw a message you sent; every recipient's sink is told."""

from __future__ import annotations

import asyncio

import click

from broker.cli._node import as_option, node_context
from broker.cli._output import emit_json
from broker.cli.publish import print_result
from broker.pep import Publisher, PublishResult


@click.command()
@click.argument("message_id")
@as_option("The participant that sent the message")
@click.option("--reason", default="", help="Why it is withdrawn (sent to the recipients).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def retract(message_id: str, participant: str | None, reason: str, as_json: bool) -> None:
    """Retract MESSAGE_ID: a signed retraction goes to exactly its recipients."""
    ctx, sender = node_context(participant)

    async def run() -> PublishResult:
        async with Publisher(sender, ctx) as pub:
            return await pub.retract(message_id, reason)

    result = asyncio.run(run())
    if as_json:
        emit_json({"retracted": message_id, **result.to_json()})
    else:
        click.echo(f"retracted {message_id}")
        print_result(result)
