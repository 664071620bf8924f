"""`jcu subscribe`: receive as a participant into files, stdout, a TAXII store or a webhook.

The sinks live in the connectors (`connectors.isac.factory.make_sink`), imported
only when the verb runs: the CLI is the composition root. Runs until
SIGTERM/SIGINT (then finishes the batch in hand, commits, writes a final audit
checkpoint and exits 0), or with `--once` until the end of what is on the
topics now.
"""

from __future__ import annotations

import click

from broker import config
from broker.cli._node import as_option, node_context
from broker.cli._output import emit_json
from broker.cli._runtime import OnStop, run_until_signalled
from broker.cli._workflows import node_workflows
from broker.metrics import Metrics
from broker.pep import Subscriber, SubscriberStats


@click.command()
@as_option("Receiving participant", "requested")
@click.option("--once", is_flag=True, help="Drain what is on the topics now, then exit.")
@click.option(
    "--out",
    default="-",
    show_default=True,
    help="Directory to write into, or - for stdout (jsonl only).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "stix", "misp", "misp-feed", "taxii"]),
    default="jsonl",
    show_default=True,
    help="jsonl: JSON lines; stix: a STIX 2.1 bundle per STIX object (its newest version); "
    "misp: a MISP event file per event (newest version, STIX bundles made into one event "
    "each); misp-feed: the same as a MISP feed (manifest.json, hashes.csv, and stix/ bundles "
    "for OpenCTI); other payload types as JSON lines next to them; taxii: the participant's "
    "TAXII store (`jcu taxii serve`).",
)
@click.option(
    "--webhook",
    default=None,
    metavar="URL",
    help="POST every delivery as JSON to URL (retried with exponential backoff, bounded).",
)
@click.option(
    "--group",
    default=None,
    help="Consumer group, named <participant>.<channel> (default <participant>.subscriber).",
)
@click.option(
    "--metrics-port", type=int, default=None, help="Serve Prometheus metrics on 127.0.0.1:PORT."
)
@click.option("--no-receipts", is_flag=True, help="Do not send delivery receipts.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10000),
    default=500,
    show_default=True,
    help="Records per batch: delivered, made durable, then committed together.",
)
@click.option(
    "--max-batch-mib",
    type=click.IntRange(1, 4096),
    default=32,
    show_default=True,
    help="Largest a fetched record batch may decompress to; a larger one (a compression "
    "bomb) is dead-lettered whole as compression-bomb, audited, and passed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
def subscribe(
    requested: str | None,
    once: bool,
    out: str,
    fmt: str,
    webhook: str | None,
    group: str | None,
    metrics_port: int | None,
    no_receipts: bool,
    batch_size: int,
    max_batch_mib: int,
    as_json: bool,
) -> None:
    """Receive what this node's organisation is entitled to: verify, decrypt, re-check,
    deliver once."""
    from connectors.isac.factory import make_sink

    settings = config.load()
    ctx, participant = node_context(requested)
    sink = make_sink(fmt, out, participant, settings, webhook=webhook)
    metrics = Metrics()
    if metrics_port is not None:
        metrics.serve(metrics_port)

    async def run(on_stop: OnStop) -> SubscriberStats:
        sub = Subscriber(
            participant,
            ctx,
            sink,
            group_id=group,
            metrics=metrics,
            receipts=not no_receipts,
            max_batch=batch_size,
            workflows=workflows,
            max_decompressed=max_batch_mib * 1024 * 1024,
        )
        on_stop(sub.request_stop)
        async with sub:
            if not once:
                click.echo(f"{participant}: receiving from {', '.join(sub.topics)}", err=True)
            return await sub.run(until_idle=once)

    with node_workflows(ctx, participant) as workflows:
        stats = run_until_signalled(run)
    if as_json:
        emit_json(stats.to_json())
    else:
        rejected = ", ".join(f"{k}={v}" for k, v in sorted(stats.rejected.items())) or "none"
        click.echo(
            f"{participant}: delivered {stats.delivered}, retracted {stats.retracted}, "
            f"duplicates dropped {stats.duplicates}, rejected {rejected}",
            err=True,
        )
