"""`jcu kafka up | down | status | topics | cert`: the local Kafka cluster for development and
tests, and the contract's topics on any cluster (the platform admin's job, not an
organisation's)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from broker import config
from broker.cli._options import connection_options
from broker.cli._output import emit_json
from broker.errors import ConfigError
from broker.kafka.local import KAFKA_VERSION, KafkaStatus, LocalKafka
from broker.kafka.topics import contract_topics, ensure_topics

_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cluster data directory (default: $JCU_HOME/kafka).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _local(
    data_dir: Path | None,
    port: int = 9092,
    controller_port: int | None = None,
    *,
    brokers: int = 1,
    mtls_port: int | None = None,
    secure: bool = True,
) -> LocalKafka:
    settings = config.load()
    return LocalKafka(
        data_dir or settings.home / "kafka",
        port=port,
        controller_port=controller_port,
        mtls_port=mtls_port,
        brokers=brokers,
        cache_dir=settings.kafka_cache,
        secure=secure,
    )


def _report(status: KafkaStatus, as_json: bool) -> None:
    if as_json:
        emit_json(status.as_dict())
    elif status.running:
        nodes = f"{status.brokers} brokers, pids {sorted(status.pids.values())}"
        walls = f"; admin client file {status.admin_config}" if status.secure else " (PLAINTEXT)"
        click.echo(
            f"kafka {status.version} running: bootstrap {status.bootstrap} "
            f"({nodes}, data {status.data_dir}){walls}"
        )
    else:
        click.echo(f"kafka not running ({status.detail}; data {status.data_dir})")


@click.group()
def kafka() -> None:
    """A local Apache Kafka cluster (KRaft, Maven Central jars, loopback, SASL_SSL and ACLs)
    and the contract's topics."""


@kafka.command()
@click.option(
    "--port",
    type=int,
    default=9092,
    show_default=True,
    help="Client (bootstrap) port of the first broker; the others follow it.",
)
@click.option(
    "--controller-port",
    type=int,
    default=None,
    help="KRaft controller port of the first node (default: after the client ports).",
)
@click.option(
    "--brokers",
    type=click.Choice(["1", "3"]),
    default="1",
    show_default=True,
    help="Nodes (each a combined broker and controller; three make a quorum of three, and "
    "topics get replication factor 3 with min.insync.replicas=2).",
)
@click.option(
    "--mtls-port",
    type=int,
    default=None,
    help="Also listen for clients with certificates (mTLS) from this port on.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="PLAINTEXT listeners with no authorizer: anyone who reaches the port may do anything.",
)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait.")
@_data_dir_option
@_json_option
def up(
    port: int,
    controller_port: int | None,
    brokers: str,
    mtls_port: int | None,
    insecure: bool,
    timeout: float,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Start the cluster (fetching Kafka once with Maven), create the contract's topics, and
    print the bootstrap address. Secured: SASL_SSL (SCRAM-SHA-512) for clients, TLS between
    nodes, StandardAuthorizer with nothing allowed by default; the platform admin's Kafka
    client file is printed (point JCU_KAFKA_CONFIG at it for `jcu kafka topics` and
    `jcu acl apply`)."""
    local = _local(
        data_dir,
        port,
        controller_port,
        brokers=int(brokers),
        mtls_port=mtls_port,
        secure=not insecure,
    )
    if not as_json and not local.status().running:
        click.echo(
            f"starting kafka {KAFKA_VERSION}: {local.brokers} node(s) from 127.0.0.1:"
            f"{local.port} ...",
            err=True,
        )
    status = asyncio.run(local.start(timeout=timeout))
    created = asyncio.run(
        ensure_topics(local.connection(), contract_topics(replication=min(3, local.brokers)))
    )
    if as_json:
        emit_json({**status.as_dict(), "topics_created": created})
    else:
        click.echo(status.bootstrap)
        if local.secure:
            click.echo(f"platform admin's client file: {local.admin_config}", err=True)


@kafka.command()
@_data_dir_option
@_json_option
def down(data_dir: Path | None, as_json: bool) -> None:
    """Stop every node of the cluster cleanly."""
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
    """Say whether the cluster runs, and where. Exit 3 when it does not."""
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
    help="Replication factor of every topic (3 or more sets min.insync.replicas=2).",
)
@_json_option
@connection_options
def topics(partitions: int, replication: int, as_json: bool) -> None:
    """Create the contract's topics and align their configuration (the platform admin).

    Idempotent: missing topics are created, existing ones get the contract's settings
    (data topics stamp the broker's append time). Topics are never created implicitly.
    Runs as this home's Kafka principal, which must be allowed to create topics.
    """
    kafka_conn = config.load().kafka
    created = asyncio.run(
        ensure_topics(kafka_conn, contract_topics(partitions=partitions, replication=replication))
    )
    if as_json:
        emit_json({"bootstrap": kafka_conn.bootstrap, "topics_created": created})
    else:
        click.echo(
            f"kafka {kafka_conn.bootstrap}: {len(created)} topics created, all topics aligned"
        )


@kafka.command()
@click.argument("principal")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for PRINCIPAL.crt, PRINCIPAL.key (0600) and the CA certificate.",
)
@click.option(
    "--ca-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The CA's directory (ca.pem, ca.key), made if missing (default: the local cluster's).",
)
@click.option(
    "--server",
    is_flag=True,
    help="A broker's certificate (server and client auth; PRINCIPAL.pem holds key and chain "
    "for Kafka's PEM keystore).",
)
@click.option("--host", "hosts", multiple=True, help="A host name the broker is reached by.")
@_data_dir_option
@_json_option
def cert(
    principal: str,
    out_dir: Path,
    ca_dir: Path | None,
    server: bool,
    hosts: tuple[str, ...],
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Issue a certificate from the cluster's CA: a client's (mTLS: its common name is the
    Kafka principal, User:PRINCIPAL, which gets the same ACLs as over SCRAM) or, with
    --server, a broker's."""
    import shutil

    from broker.kafka.tls import LocalCA

    if not principal or any(c in principal for c in ',=+/\\"<>;# '):
        raise ConfigError(f'{principal!r} is not a principal name (no spaces or ,=+/;#<>\\")')
    local = _local(data_dir)
    if ca_dir is not None:
        ca = LocalCA.open_or_create(ca_dir)
    elif local.secure and local.ca.cert_file.exists():
        ca = local.ca
    else:
        raise ConfigError(
            f"{local.data_dir} holds no secured cluster's CA; run `jcu kafka up`, or name a CA "
            "directory with --ca-dir"
        )
    issued = ca.issue(principal, out_dir / principal, hosts=hosts, server=server, client=True)
    if not server:
        issued.pem.unlink()
    if ca.cert_file.resolve() != (out_dir / "kafka-ca.pem").resolve():
        shutil.copyfile(ca.cert_file, out_dir / "kafka-ca.pem")
    result = {
        "principal": f"User:{principal}",
        "cert_file": str(issued.cert),
        "key_file": str(issued.key),
        "ca_file": str(out_dir / "kafka-ca.pem"),
        "bootstrap": local.mtls_bootstrap if ca_dir is None else None,
    }
    if server:
        result["keystore_file"] = str(issued.pem)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"issued {issued.cert} and {issued.key} for User:{principal}")
