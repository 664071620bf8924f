"""`jcu subscribe`: receive as a participant into files, stdout, a TAXII store or a webhook.

The sinks live in the connectors (`connectors.isac.factory.make_sink`), imported
only when the verb runs: the CLI is the composition root. Runs until
SIGTERM/SIGINT (then finishes the batch in hand, commits, writes a final audit
checkpoint and exits 0), or with `--once` until the end of what is on the
topics now. A sink that stays down past `--sink-give-up-after` stops it without
committing (exit 1, one line): the batch is delivered again on the next run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from broker import config
from broker.cli._node import as_option, node_context
from broker.cli._options import connection_options
from broker.cli._output import emit_json
from broker.cli._runtime import OnStop, run_until_signalled
from broker.errors import StateError
from broker.pep.sink import DEFAULT_SINK_GIVE_UP

if TYPE_CHECKING:
    from broker.pep import SubscriberStats

# The subscriber and its sinks are imported once the node is open: the keystore unlocks
# meanwhile (`node_context`; tests/broker/cli/test_startup.py).


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
    help="POST every delivery as JSON to URL. With --out DIR as well, every delivery goes to "
    "both (settled only when each has it).",
)
@click.option(
    "--sink-give-up-after",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_SINK_GIVE_UP,
    show_default=True,
    metavar="SECONDS",
    help="While a sink cannot take deliveries (receiver down, disk full, read-only), the batch "
    "is held and retried with bounded backoff; after this long the subscriber stops without "
    "committing (exit 1) and delivers the batch again on its next run.",
)
@click.option(
    "--rebuild-ledger",
    is_flag=True,
    help="The delivery ledger was lost: start a new one from the group's committed offsets "
    "(without this, a missing ledger for a group with committed offsets is refused).",
)
@click.option(
    "--group",
    default=None,
    help="Consumer group, named <participant>.<channel> (default <participant>.subscriber): "
    "a delivery channel with its own ledger and its own audit log, <participant>/receive/"
    "<channel> (the default channel's is <participant>/receive). Channels run at once.",
)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on PORT.")
@click.option(
    "--metrics-bind",
    default=None,
    metavar="ADDR",
    help="Address the metrics listen on (default JCU_METRICS_ADDR, else 127.0.0.1).",
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
@connection_options
def subscribe(
    requested: str | None,
    once: bool,
    out: str,
    fmt: str,
    webhook: str | None,
    sink_give_up_after: float,
    rebuild_ledger: bool,
    group: str | None,
    metrics_port: int | None,
    metrics_bind: str | None,
    no_receipts: bool,
    batch_size: int,
    max_batch_mib: int,
    as_json: bool,
) -> None:
    """Receive what this node's organisation is entitled to: verify, decrypt, re-check,
    deliver once."""
    settings = config.load()
    ctx, participant = node_context(requested)
    from broker.cli._workflows import node_workflows
    from broker.pep import Subscriber
    from broker.pep.sink import SinkRetry
    from broker.pep.subscriber import receive_side
    from connectors.isac.factory import make_sink

    if not rebuild_ledger:
        _refuse_a_lost_ledger(settings.home, participant, group, fmt, out)
    sink = make_sink(fmt, out, participant, settings, webhook=webhook)
    metrics = None  # counted only when served: prometheus_client is not imported otherwise
    if metrics_port is not None:
        from broker.audit import leaf_encoder
        from broker.metrics import Metrics

        metrics = Metrics()
        metrics.watch_audit_encoder(leaf_encoder(ctx.envelope.store))
        metrics.serve(metrics_port, metrics_bind)

    async def run(on_stop: OnStop) -> SubscriberStats:
        sub = Subscriber(
            participant,
            ctx,
            sink,
            group_id=group,
            # Each channel its own log and state: two groups of one participant at once.
            audit=ctx.audit_log(
                participant, receive_side(participant, group), key_when_needed=True
            ),
            metrics=metrics,
            receipts=not no_receipts,
            max_batch=batch_size,
            workflows=workflows,
            max_decompressed=max_batch_mib * 1024 * 1024,
            sink_retry=SinkRetry(give_up_after=sink_give_up_after),
            rebuild_ledger=rebuild_ledger,
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


def _refuse_a_lost_ledger(
    home: Path, participant: str, group: str | None, fmt: str, out: str
) -> None:
    """No ledger for this channel, and its output already holds deliveries: the ledger was
    lost (deciding again would audit and receipt them twice), unless the operator says to
    rebuild it. (The subscriber checks the group's committed offsets too.)"""
    from broker.pep.subscriber import default_group, ledger_path

    channel = group or default_group(participant)
    path = ledger_path(home, participant, channel)
    if out == "-" or path.exists():
        return
    directory = Path(out)
    if fmt == "jsonl":
        sink = directory / f"{participant}.jsonl"
        holds = sink.is_file() and sink.stat().st_size > 0
    else:
        holds = directory.is_dir() and any(
            p.suffix in (".json", ".jsonl") for p in directory.iterdir()
        )
    if holds:
        raise StateError(
            f"the delivery ledger {path} of channel {channel} is missing but {directory} "
            "already holds deliveries: put the ledger back, or run again with --rebuild-ledger "
            "to start a new one (what the sink holds is kept, one copy of each)"
        )
