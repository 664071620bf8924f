"""`jcu kafka up | down | status | topics`: the local Kafka for development and tests, and the
contract's topics on any cluster (the platform operator's job, not an organisation's)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from broker import config
from broker.cli._output import emit_json
from broker.kafka.local import KAFKA_VERSION, KafkaStatus, LocalKafka
from broker.kafka.topics import contract_topics, ensure_topics

_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Broker data directory (default: $JCU_HOME/kafka).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _local(
    data_dir: Path | None, port: int = 9092, controller_port: int | None = None
) -> LocalKafka:
    settings = config.load()
    return LocalKafka(
        data_dir or settings.home / "kafka",
        port=port,
        controller_port=controller_port,
        cache_dir=settings.kafka_cache,
    )


def _report(status: KafkaStatus, as_json: bool) -> None:
    if as_json:
        emit_json(status.as_dict())
    elif status.running:
        click.echo(
            f"kafka {status.version} running: bootstrap {status.bootstrap} "
            f"(pid {status.pid}, data {status.data_dir})"
        )
    else:
        click.echo(f"kafka not running ({status.detail}; data {status.data_dir})")


@click.group()
def kafka() -> None:
    """A local Apache Kafka (KRaft, Maven Central jars, loopback) and the contract's topics."""


@kafka.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Client (bootstrap) port.")
@click.option(
    "--controller-port", type=int, default=None, help="KRaft controller port (default port+1)."
)
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait.")
@_data_dir_option
@_json_option
def up(
    port: int, controller_port: int | None, timeout: float, data_dir: Path | None, as_json: bool
) -> None:
    """Start the broker (fetching Kafka once with Maven) and wait until it answers."""
    local = _local(data_dir, port, controller_port)
    if not as_json and not local.status().running:
        click.echo(f"starting kafka {KAFKA_VERSION} on 127.0.0.1:{port} ...", err=True)
    status = asyncio.run(local.start(timeout=timeout))
    bootstrap = status.bootstrap or f"127.0.0.1:{port}"
    created = asyncio.run(ensure_topics(bootstrap, contract_topics()))
    if as_json:
        emit_json({**status.as_dict(), "topics_created": created})
    else:
        click.echo(status.bootstrap)


@kafka.command()
@_data_dir_option
@_json_option
def down(data_dir: Path | None, as_json: bool) -> None:
    """Stop the broker cleanly."""
    local = _local(data_dir)
    stopped = local.stop()
    if as_json:
        emit_json({"stopped": stopped, "data_dir": str(local.data_dir)})
    else:
        click.echo("kafka stopped" if stopped else "kafka was not running")


@kafka.command()
@_data_dir_option
@_json_option
def status(data_dir: Path | None, as_json: bool) -> None:
    """Say whether the broker runs, and where. Exit 3 when it does not."""
    st = _local(data_dir).status()
    _report(st, as_json)
    if not st.running:
        raise click.exceptions.Exit(3)


@kafka.command()
@click.option(
    "--partitions",
    type=click.IntRange(1, 1000),
    default=3,
    show_default=True,
    help="Partitions of each community topic.",
)
@click.option(
    "--replication",
    type=click.IntRange(1, 10),
    default=1,
    show_default=True,
    help="Replication factor of every topic.",
)
@_json_option
def topics(partitions: int, replication: int, as_json: bool) -> None:
    """Create the contract's topics on KAFKA_BOOTSTRAP and align their configuration.

    Idempotent: missing topics are created, existing ones get the contract's settings
    (data topics stamp the broker's append time). Topics are never created implicitly.
    """
    bootstrap = config.load().bootstrap
    created = asyncio.run(
        ensure_topics(bootstrap, contract_topics(partitions=partitions, replication=replication))
    )
    if as_json:
        emit_json({"bootstrap": bootstrap, "topics_created": created})
    else:
        click.echo(f"kafka {bootstrap}: {len(created)} topics created, all topics aligned")
