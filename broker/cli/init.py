"""`jcu init`: prepare this machine's broker state for the sample registry.

Steps are functions taking Settings and returning a result with `to_json()`,
so another step (Kafka topics) is one more function and one more call below.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import click

from broker import config
from broker.cli._output import emit_json
from broker.config import Settings
from broker.kafka.topics import contract_topics, ensure_topics
from broker.schemas import SchemaStore
from broker.trust.key_admin import InitResult
from broker.trust.key_admin import init_keys as _init_keys
from broker.trust.keyring import registry_dir
from broker.trust.keystore import open_keystore
from broker.trust.topic import publish_registry


def init_keys(settings: Settings) -> InitResult:
    """Registry authority key, participant keys and signed records where missing (idempotent)."""
    store = SchemaStore.load(settings.schemas)
    return _init_keys(settings, open_keystore(settings.keystore), store)


def _print_keys(result: InitResult) -> None:
    verb = "created" if result.authority_created else "kept"
    click.echo(f"registry authority key {result.authority_key_id}: {verb}")
    for participant, action in result.actions.items():
        click.echo(f"  {participant:<16} {action}")
    counts = Counter(result.actions.values())
    summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
    click.echo(f"keys: {summary}; signed records in {result.registry_dir}")


async def init_kafka(settings: Settings, partitions: int, replication: int) -> dict[str, Any]:
    """Create the contract's topics that are missing; publish the signed registry records."""
    created = await ensure_topics(
        settings.bootstrap, contract_topics(partitions=partitions, replication=replication)
    )
    published = await publish_registry(settings.bootstrap, registry_dir(settings))
    return {
        "bootstrap": settings.bootstrap,
        "topics_created": created,
        "registry_records_published": published,
    }


@click.command()
@click.option("--no-kafka", is_flag=True, help="Keys only: do not touch Kafka.")
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
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def init(no_kafka: bool, partitions: int, replication: int, as_json: bool) -> None:
    """Keys for every participant, the contract's topics, the signed registry on Kafka.

    Idempotent: run it again and it only reports what already exists. Private
    keys are encrypted with the passphrase in JCU_KEY_PASSPHRASE (or the file
    named by JCU_KEY_PASSPHRASE_FILE). Kafka is KAFKA_BOOTSTRAP (default
    127.0.0.1:9092); topics are created here and never implicitly.
    """
    settings = config.load()
    keys = init_keys(settings)
    kafka = None if no_kafka else asyncio.run(init_kafka(settings, partitions, replication))
    if as_json:
        out: dict[str, Any] = {"keys": keys.to_json()}
        if kafka is not None:
            out["kafka"] = kafka
        emit_json(out)
        return
    _print_keys(keys)
    if kafka is not None:
        created = kafka["topics_created"]
        click.echo(
            f"kafka {kafka['bootstrap']}: {len(created)} topics created"
            f"{' (' + ', '.join(created) + ')' if 0 < len(created) <= 5 else ''}, "
            f"{kafka['registry_records_published']} registry records published"
        )
