"""`jcu registry ...`: carry signed registry snapshots, and a node's view of them.

`publish` puts a snapshot file on `jcu.registry` (as the registry authority's
Kafka principal, the only one the ACLs let write it; nodes believe
only what the authority signed). `trust`, `import`, `sync` and `show` act on
this node's registry state (JCU_HOME), which never goes back to an older epoch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from broker import config
from broker.cli._options import connection_options
from broker.cli._output import console, emit_json, table
from broker.config import Settings
from broker.errors import ConfigError, Rejected
from broker.schemas import SchemaStore
from broker.trust.node import NodeHome
from broker.trust.state import TrustedRegistry, registry_dir

_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_file = click.Path(dir_okay=False, exists=True, path_type=Path)


def _trusted(settings: Settings) -> TrustedRegistry:
    NodeHome.open(settings.home)  # a node's state, not the authority's
    return TrustedRegistry.load(registry_dir(settings), SchemaStore.load(settings.schemas))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


@click.group()
def registry() -> None:
    """Registry snapshots: publish one, or see and update what this node trusts."""


@registry.command()
@click.argument("snapshot", type=_file)
@_json
@connection_options
def publish(snapshot: Path, as_json: bool) -> None:
    """Put a snapshot file on jcu.registry. Nodes accept it only if the authority signed it;
    a node run here checks it first and refuses to publish one it would refuse."""
    from broker.trust.topic import publish_snapshot

    settings = config.load()
    data = _read(snapshot)
    if (settings.home / "node.json").exists():
        trusted = _trusted(settings)
        try:
            trusted.check(data)
        except Rejected as exc:
            raise ConfigError(f"{snapshot} would be refused ({exc.reason}): {exc}") from None
    partition, offset = asyncio.run(publish_snapshot(settings.kafka, data))
    if as_json:
        emit_json({"topic": "jcu.registry", "partition": partition, "offset": offset})
    else:
        click.echo(f"published {snapshot.name} on jcu.registry (offset {offset})")


@registry.command()
@click.argument("pem", type=_file)
@click.option("--replace", is_flag=True, help="Replace the authority key this node trusts.")
@_json
def trust(pem: Path, replace: bool, as_json: bool) -> None:
    """Trust the registry authority's public key PEM (authority.pem, given out of band)."""
    node = NodeHome.open(config.load().home)
    kid = node.install_anchor(_read(pem), replace=replace)
    if as_json:
        emit_json({"authority_key_id": kid})
    else:
        click.echo(f"node {node.participant} trusts registry authority key {kid}")


@registry.command("import")
@click.argument("snapshot", type=_file)
@_json
def import_(snapshot: Path, as_json: bool) -> None:
    """Accept a snapshot file without Kafka (refused if forged, older or a fork)."""
    trusted = _trusted(config.load())
    try:
        accepted = trusted.offer(_read(snapshot))
    except Rejected as exc:
        raise ConfigError(f"{snapshot} refused ({exc.reason}): {exc}") from None
    epoch = trusted.epoch
    if as_json:
        emit_json({"epoch": epoch, "accepted": accepted is not None})
    else:
        click.echo(f"registry epoch {epoch} " + ("accepted" if accepted else "already held"))


@registry.command()
@_json
@connection_options
def sync(as_json: bool) -> None:
    """Read jcu.registry to its end and accept the newest snapshot the authority signed."""
    from broker.trust.topic import catch_up

    settings = config.load()
    trusted = _trusted(settings)
    result = asyncio.run(catch_up(settings.kafka, trusted))
    if as_json:
        emit_json(
            {
                "epoch": trusted.epoch,
                "read": result.read,
                "accepted": result.accepted,
                "refused": [{"reason": r, "error": e} for r, e in result.refused],
            }
        )
        return
    for reason, error in result.refused:
        click.echo(f"refused ({reason}): {error}", err=True)
    if trusted.current is None:
        raise ConfigError(
            "no registry snapshot signed by the trusted authority on jcu.registry yet; "
            "ask the authority to export one and publish it"
        )
    click.echo(f"registry epoch {trusted.epoch} ({len(result.accepted)} accepted now)")


@registry.command()
@_json
def show(as_json: bool) -> None:
    """What this node trusts: the authority key, the epoch, the participants and records."""
    trusted = _trusted(config.load())
    snap = trusted.current
    if snap is None:
        raise ConfigError(
            "this node has accepted no registry snapshot yet; run `jcu registry sync`"
        )
    if as_json:
        emit_json(
            {
                "epoch": snap.epoch,
                "issued": snap.issued.isoformat(),
                "authority_key_id": snap.authority_key_id,
                "policy_bundle_hash": snap.policy_bundle_hash,
                "participants": {
                    p.id: {
                        "community": p.community,
                        "role": p.role,
                        "status": p.status,
                        "record": snap.entries[p.id].serial if p.id in snap.entries else None,
                    }
                    for p in snap.registry
                },
            }
        )
        return
    click.echo(
        f"registry epoch {snap.epoch}, issued {snap.issued.isoformat()}, signed by authority key "
        f"{snap.authority_key_id}"
    )
    console().print(
        table(
            "participants",
            ["participant", "community", "role", "status", "record"],
            [
                [
                    p.id,
                    p.community,
                    p.role,
                    p.status,
                    snap.entries[p.id].serial if p.id in snap.entries else "not registered",
                ]
                for p in snap.registry
            ],
        )
    )
