"""`jcu kafka up | down | status`: the local single-node Kafka for development and tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from broker import config
from broker.cli._output import emit_json
from broker.kafka.local import KAFKA_VERSION, KafkaStatus, LocalKafka

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
    """A local single-node Apache Kafka (KRaft) from Maven Central jars, on loopback."""


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
    if as_json:
        emit_json(status.as_dict())
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
