"""`jcu authority ...`: the registry authority, in its own home, with its own key.

Run with JCU_HOME set to the authority's home (never an organisation's node).
Nothing here touches Kafka: the authority can stay offline and hand its
snapshot files to anyone who publishes them (`jcu registry publish`).
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import yaml

from broker import config
from broker.cli._output import console, emit_json, table
from broker.config import Settings
from broker.errors import ConfigError, JcuError
from broker.schemas import SchemaStore
from broker.trust.authority import Approval, Authority
from broker.trust.keystore import Keystore, open_keystore
from broker.trust.passphrase import passphrase_from_env
from broker.trust.records import REVOCATION_REASONS
from broker.trust.registry import Registry, load_registry, parse_registry
from broker.trust.snapshot import canonical_facts

_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _open(settings: Settings) -> Authority:
    keystore = open_keystore(settings.keystore, purpose="the registry authority's key")
    return Authority.open(settings.home, keystore, SchemaStore.load(settings.schemas))


def _source(settings: Settings) -> tuple[Any, Registry]:
    """The registry source the authority approves against: participants.yaml."""
    path = settings.policies / "participants.yaml"
    registry = load_registry(path)
    return yaml.safe_load(path.read_text(encoding="utf-8")), registry


@click.group()
def authority() -> None:
    """The registry authority: approve organisations, revoke keys, export signed snapshots."""


@authority.command("init")
@_json
def init_(as_json: bool) -> None:
    """Make the registry authority's home (JCU_HOME) and its signing key.

    Hand the printed authority.pem to every organisation: it is what their nodes trust.
    """
    settings = config.load()
    passphrase = passphrase_from_env(purpose="the registry authority's new key", new=True)
    office = Authority.create(
        settings.home, Keystore(settings.keystore, passphrase), SchemaStore.load(settings.schemas)
    )
    if as_json:
        emit_json({"key_id": office.key_id, "public_key": str(office.public_key_file)})
        return
    click.echo(f"registry authority key {office.key_id}")
    click.echo(f"public key for every node: {office.public_key_file}")


def _print_approval(a: Approval) -> None:
    parts = []
    if a.added:
        parts.append(f"keys {', '.join(a.added)} added")
    if a.retired:
        parts.append(f"{', '.join(a.retired)} retired")
    if a.revoked:
        parts.append(f"{', '.join(a.revoked)} revoked")
    click.echo(f"{a.participant}: {a.kind} approved, record {a.serial} ({'; '.join(parts)})")


@authority.command()
@click.argument(
    "requests", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--fingerprint",
    "fingerprints",
    multiple=True,
    help="A request fingerprint the organisation confirmed over another channel "
    "(needed for a first registration; repeatable).",
)
@_json
def approve(requests: tuple[Path, ...], fingerprints: tuple[str, ...], as_json: bool) -> None:
    """Approve registration, rotation and revocation requests (REQUEST files).

    Each request is checked on its own: signatures (proof of possession), the facts
    it claims against participants.yaml, keys never registered before; a first
    registration also against --fingerprint. Takes effect in the next `export`.
    """
    settings = config.load()
    office = _open(settings)
    _, registry = _source(settings)
    done: list[dict[str, Any]] = []
    failed = 0
    for path in requests:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        try:
            approval = office.approve(data, registry, fingerprints=fingerprints)
        except JcuError as exc:
            failed += 1
            click.echo(f"jcu: error: {path}: {exc}", err=True)
            done.append({"request": str(path), "error": str(exc)})
            continue
        done.append({"request": str(path), **approval.to_json()})
        if not as_json:
            _print_approval(approval)
    if as_json:
        emit_json(done)
    if failed:
        raise click.exceptions.Exit(1)


@authority.command()
@click.argument("participant")
@click.option("--reason", required=True, type=click.Choice(REVOCATION_REASONS))
@click.option(
    "--at",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
    default=None,
    help="Revocation time, UTC (default: now).",
)
@_json
def revoke(participant: str, reason: str, at: datetime | None, as_json: bool) -> None:
    """Revoke every key of PARTICIPANT. `compromised` also refuses everything the broker
    appends from then on, whatever date it is signed with; `superseded` still lets what
    was made before verify. Takes effect in the next `export`."""
    approval = _open(config.load()).revoke(participant, reason, at=at)
    if as_json:
        emit_json(approval.to_json())
    else:
        _print_approval(approval)
        click.echo("run `jcu authority export` and publish the snapshot for nodes to learn of it")


@authority.command("rotate-own-key")
@_json
def rotate_own_key(as_json: bool) -> None:
    """A new authority signing key, endorsed by the old one; nodes follow the chain."""
    t = _open(config.load()).rotate_own_key()
    if as_json:
        emit_json({"from_key_id": t.from_key_id, "key_id": t.key_id, "epoch": t.epoch})
        return
    click.echo(f"registry authority key {t.from_key_id} -> {t.key_id} from epoch {t.epoch}")


@authority.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also copy the snapshot file here.",
)
@_json
def export(out: Path | None, as_json: bool) -> None:
    """Sign the next epoch's registry snapshot: every record, the participants.yaml facts
    and the policy bundle hash. Anyone may publish the file (`jcu registry publish`)."""
    from broker.policy import PolicyEngine

    settings = config.load()
    office = _open(settings)
    document, registry = _source(settings)
    facts = canonical_facts(document)
    registry = parse_registry(document, source="participants.yaml")
    store = SchemaStore.load(settings.schemas)
    engine = PolicyEngine.load(
        settings.policies, registry, personal_data_fields=store.personal_data_fields
    )
    result = office.export(facts, registry, engine.bundle_hash)
    if out is not None:
        shutil.copyfile(result.path, out)
    if as_json:
        emit_json({**result.to_json(), "copied_to": str(out) if out else None})
        return
    click.echo(
        f"registry snapshot epoch {result.epoch}: {result.records} records of "
        f"{result.participants} participants -> {out or result.path}"
    )


@authority.command()
@_json
def show(as_json: bool) -> None:
    """The authority's key, last epoch and every participant's record."""
    office = _open(config.load())
    records = office.records()
    if as_json:
        emit_json(
            {
                "key_id": office.key_id,
                "epoch": office.epoch,
                "records": {
                    p: {"serial": e.serial, "keys": {k.key_id: k.status for k in e.keys}}
                    for p, e in records.items()
                },
            }
        )
        return
    click.echo(f"registry authority key {office.key_id}; last exported epoch {office.epoch}")
    console().print(
        table(
            "records",
            ["participant", "record", "keys"],
            [
                [p, e.serial, ", ".join(f"{k.key_id} {k.status}" for k in e.keys)]
                for p, e in records.items()
            ],
        )
    )
