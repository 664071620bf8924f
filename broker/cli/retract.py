"""`jcu retract`: withdraw what you sent, one message or a whole publication; every
recipient's sink is told."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from broker.cli._node import as_option, node_context
from broker.cli._options import connection_options
from broker.cli._output import emit_json
from broker.cli.publish import print_result
from broker.errors import ConfigError
from broker.pep import Publisher, PublishResult


def _publication(pub: Publisher, path: Path | None, container: str | None) -> list[str]:
    """The messages this node sent for a file's objects (at the file's versions), or for
    everything of one MISP event or STIX bundle."""
    if container is not None:
        found = pub.sent.messages_of(container=container)
        if not found:
            raise ConfigError(
                f"{pub.participant} has no record here of sending anything of {container}"
            )
        return found
    assert path is not None  # noqa: S101 - narrows for mypy: path or container, click checked
    from connectors.soc import parse_file
    from connectors.soc.publishing import declared_source, source_ref

    parsed = parse_file(path, default_tlp="RED")  # any TLP: only ids and versions matter
    scope = declared_source(str(path))
    refs = (source_ref(item, pub, scope) for item in parsed.items)
    found = pub.sent.messages_for(s for s in refs if s is not None)
    if not found:
        raise ConfigError(
            f"{pub.participant} has no record here of publishing the objects of {path}"
        )
    return found


@click.command()
@click.argument("message_id", required=False)
@as_option("The participant that sent the message")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Retract the whole publication of this STIX or MISP file: every message made "
    "from its objects, at the versions the file holds, from this bundle or event.",
)
@click.option(
    "--event",
    "container",
    default=None,
    metavar="UUID",
    help="Retract everything sent of one MISP event (its uuid) or STIX bundle (bundle--…), "
    "every version.",
)
@click.option("--reason", default="", help="Why it is withdrawn (sent to the recipients).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@connection_options
def retract(
    message_id: str | None,
    participant: str | None,
    path: Path | None,
    container: str | None,
    reason: str,
    as_json: bool,
) -> None:
    """Retract MESSAGE_ID, or a whole publication (--file, --event): a signed retraction
    goes to exactly the recipients of each message."""
    given = [x for x in (message_id, path, container) if x is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of MESSAGE_ID, --file or --event")
    ctx, sender = node_context(participant)

    async def run() -> list[tuple[str, PublishResult]]:
        async with Publisher(sender, ctx) as pub:
            if message_id:
                return [(message_id, await pub.retract(message_id, reason))]
            ids = _publication(pub, path, container)
            sent = [m for m in ids if (found := pub.sent.get(m)) is not None and found.copies]
            return [(mid, await pub.retract(mid, reason)) for mid in sent]

    results = asyncio.run(run())
    if as_json:
        if message_id:
            ((mid, result),) = results
            emit_json({"retracted": mid, **result.to_json()})
        else:
            emit_json({"retracted": [{"message_id": m, **r.to_json()} for m, r in results]})
        return
    for mid, result in results:
        click.echo(f"retracted {mid}")
        print_result(result)
    if not message_id:
        click.echo(f"{len(results)} messages retracted", err=True)
