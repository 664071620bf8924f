"""`jcu keys list | rotate P | revoke P`: participant keys and their signed records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from broker import config
from broker.cli._output import console, emit_json, table
from broker.clock import utc_now
from broker.errors import ConfigError
from broker.schemas import SchemaStore
from broker.trust.key_admin import KeyAdmin, admin_for
from broker.trust.keyring import KeyInfo, Keyring, ParticipantKeys, registry_dir
from broker.trust.keystore import open_keystore

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _admin() -> KeyAdmin:
    settings = config.load()
    return admin_for(settings, open_keystore(settings.keystore), SchemaStore.load(settings.schemas))


def _announce(participant: str) -> str:
    """Publish PARTICIPANT's new signed record on jcu.registry, where running services pick
    it up; says what happened (a record written but not published still takes effect
    for every process started from now on)."""
    import asyncio

    from broker.errors import KafkaUnavailable
    from broker.trust.topic import publish_record

    settings = config.load()
    data = (registry_dir(settings) / f"{participant}.avro").read_bytes()
    try:
        asyncio.run(publish_record(settings.bootstrap, participant, data))
    except KafkaUnavailable:
        click.echo(
            f"warning: Kafka at {settings.bootstrap} is not reachable: the record is written "
            "but running services learn of it only when `jcu init` publishes the registry",
            err=True,
        )
        return "not published"
    return "published on jcu.registry"


def _key_json(k: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "purpose": k.purpose,
        "algorithm": k.algorithm,
        "status": k.status,
        "not_before": k.not_before.isoformat(),
        "not_after": k.not_after.isoformat(),
        "retired": k.retired.isoformat() if k.retired else None,
        "revoked": k.revoked.isoformat() if k.revoked else None,
        "revocation_reason": k.revocation_reason,
    }


def _entry_json(e: ParticipantKeys) -> dict[str, Any]:
    return {
        "participant": e.participant,
        "community": e.community,
        "kem": e.kem,
        "serial": e.serial,
        "issued": e.issued.isoformat(),
        "keys": [_key_json(k) for k in e.keys],
    }


def _print_entries(entries: list[ParticipantKeys]) -> None:
    rows = [
        (
            e.participant,
            f"{k.purpose}/{k.algorithm}",
            k.key_id,
            k.status,
            k.not_before.strftime("%Y-%m-%d"),
            (k.revoked or k.retired or k.not_after).strftime("%Y-%m-%d"),
        )
        for e in entries
        for k in e.keys
    ]
    cols = ("participant", "key", "key id", "status", "from", "until")
    out = console()
    out.width = max(out.width, 100)  # key ids must not be cut, even when piped
    out.print(table("participant keys", cols, rows))


@click.group()
def keys() -> None:
    """List, rotate and revoke participant keys (signed by the registry authority)."""


@keys.command("list")
@click.argument("participant", required=False)
@_json_option
def list_keys(participant: str | None, as_json: bool) -> None:
    """Show every participant's keys (or one participant's) from the signed registry records.

    Needs no passphrase: records are public and verified against the authority key.
    """
    settings = config.load()
    keyring = Keyring.load(registry_dir(settings), SchemaStore.load(settings.schemas))
    names = [participant] if participant else list(keyring.participants())
    if not names:
        raise ConfigError("no participant keys yet; run `jcu init`")
    entries = [keyring.entry(p) for p in names]
    if as_json:
        emit_json([_entry_json(e) for e in entries])
    else:
        _print_entries(entries)


@keys.command()
@click.argument("participant")
@_json_option
def rotate(participant: str, as_json: bool) -> None:
    """Issue new signing and KEM keys for PARTICIPANT; the old ones retire now.

    Messages signed with the old key before now still verify; newer ones must
    use the new key. Senders wrap for the new KEM key from now on.
    """
    entry = _admin().rotate(participant)
    announced = _announce(participant)
    if as_json:
        emit_json({**_entry_json(entry), "registry_topic": announced})
    else:
        new = [k for k in entry.keys if k.not_before == entry.issued]
        click.echo(
            f"{participant}: new keys {', '.join(f'{k.purpose} {k.key_id}' for k in new)} "
            f"(record serial {entry.serial}, {announced})"
        )


@keys.command()
@click.argument("participant")
@click.option("--key", "key_id", help="Revoke only this key id (default: every unrevoked key).")
@click.option(
    "--at",
    "at",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
    default=None,
    help="Revocation time, UTC (default: now). Messages created from then on are refused.",
)
@click.option("--reason", default=None, help="Why (kept in the signed record).")
@_json_option
def revoke(
    participant: str, key_id: str | None, at: datetime | None, reason: str | None, as_json: bool
) -> None:
    """Revoke PARTICIPANT's keys from now (or --at): messages created after are refused.

    Run `jcu keys rotate PARTICIPANT` afterwards to issue replacement keys.
    """
    entry = _admin().revoke(participant, kid=key_id, at=at, reason=reason)
    announced = _announce(participant)
    if as_json:
        emit_json({**_entry_json(entry), "registry_topic": announced})
    else:
        when = (at or utc_now()).isoformat()
        revoked = [k.key_id for k in entry.keys if k.revoked is not None]
        click.echo(
            f"{participant}: revoked {', '.join(revoked)} from {when} (record serial "
            f"{entry.serial}, {announced}); run `jcu keys rotate {participant}` for new keys"
        )
