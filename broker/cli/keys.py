"""`jcu keys list | rotate | revoke | register | passwd`: this node's keys and the registry's.

A node never signs a registry record: rotation and revocation are requests it
signs and hands to the registry authority (`jcu authority approve`), which
takes effect once the authority's next snapshot is published.
"""

from __future__ import annotations

from typing import Any

import click

from broker import config
from broker.cli._output import console, emit_json, table
from broker.config import Settings
from broker.errors import ConfigError
from broker.schemas import SchemaStore
from broker.trust import node as requests
from broker.trust.keystore import change_passphrase, open_keystore
from broker.trust.node import NodeHome, RequestFile
from broker.trust.passphrase import passphrase_from_env
from broker.trust.records import REVOCATION_REASONS, KeyInfo, ParticipantKeys
from broker.trust.state import TrustedRegistry, registry_dir

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


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
            k.status + (f" ({k.revocation_reason})" if k.revocation_reason else ""),
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


def _node(settings: Settings) -> tuple[NodeHome, TrustedRegistry, SchemaStore]:
    node = NodeHome.open(settings.home)
    store = SchemaStore.load(settings.schemas)
    return node, TrustedRegistry.load(registry_dir(settings), store), store


def _print_request(req: RequestFile, as_json: bool, what: str) -> None:
    if as_json:
        emit_json(req.to_json())
        return
    click.echo(f"{what}: {req.path}")
    click.echo(f"fingerprint: {req.fingerprint}")
    click.echo(
        "give it to the registry authority (`jcu authority approve`); it takes effect with "
        "the authority's next snapshot"
    )


@click.group()
def keys() -> None:
    """This node's keys: list the registry's, ask for a rotation or a revocation."""


@keys.command("list")
@click.argument("participant", required=False)
@_json_option
def list_keys(participant: str | None, as_json: bool) -> None:
    """Every participant's public keys (or one's) in the snapshot this node accepted.

    Needs no passphrase: records are public, signed by the registry authority.
    """
    _, trusted, _ = _node(config.load())
    keyring = trusted.keyring
    names = [participant] if participant else list(keyring.participants())
    if not names:
        raise ConfigError(
            "this node has accepted no registry snapshot yet; run `jcu registry sync`"
        )
    entries = [keyring.entry(p) for p in names]
    if as_json:
        emit_json([_entry_json(e) for e in entries])
    else:
        _print_entries(entries)


@keys.command()
@_json_option
def rotate(as_json: bool) -> None:
    """New signing and KEM keys for this node, and a rotation request signed by the new
    key and by the one in use now. The old keys retire when the authority approves."""
    node, trusted, store = _node(config.load())
    keystore = open_keystore(node.keystore_dir, purpose=f"the keys of {node.participant}")
    _print_request(requests.rotate(node, keystore, store, trusted), as_json, "rotation request")


@keys.command()
@click.option("--reason", required=True, type=click.Choice(REVOCATION_REASONS))
@_json_option
def revoke(reason: str, as_json: bool) -> None:
    """Ask the registry authority to revoke this node's keys (signed by them).

    `compromised`: from the moment asked, nothing the broker appends under these keys
    is accepted, whatever date it carries. Then `jcu keys register` for new keys.
    """
    node, trusted, store = _node(config.load())
    keystore = open_keystore(node.keystore_dir, purpose=f"the keys of {node.participant}")
    req = requests.revocation(
        node, keystore, store, trusted, "compromised" if reason == "compromised" else "superseded"
    )
    _print_request(req, as_json, "revocation request")


@keys.command()
@_json_option
def register(as_json: bool) -> None:
    """New keys and a registration request, after this node's keys were revoked.

    The authority approves it only against the fingerprint you confirm with it over
    another channel.
    """
    node, trusted, store = _node(config.load())
    keystore = open_keystore(node.keystore_dir, purpose=f"the keys of {node.participant}")
    _print_request(
        requests.reregister(node, keystore, store, trusted), as_json, "registration request"
    )


@keys.command()
@_json_option
def passwd(as_json: bool) -> None:
    """Re-encrypt this home's keys under a new passphrase (and today's scrypt cost).

    The current passphrase comes as usual (JCU_KEY_PASSPHRASE, its file, or a prompt);
    the new one from JCU_NEW_KEY_PASSPHRASE, the file named by JCU_NEW_KEY_PASSPHRASE_FILE,
    or a prompt asked twice. It must be strong.
    """
    import os

    settings = config.load()
    old = passphrase_from_env(purpose="the keys, current passphrase")
    env = {
        "JCU_KEY_PASSPHRASE": os.environ.get("JCU_NEW_KEY_PASSPHRASE", ""),
        "JCU_KEY_PASSPHRASE_FILE": os.environ.get("JCU_NEW_KEY_PASSPHRASE_FILE", ""),
    }
    new = passphrase_from_env(env, purpose="the keys, new passphrase", new=True)
    count = change_passphrase(settings.keystore, old, new)
    if as_json:
        emit_json({"keys": count, "keystore": str(settings.keystore)})
    else:
        click.echo(f"{count} key files re-encrypted in {settings.keystore}")
