"""`jcu acl plan | apply | check`: the Kafka walls the registry implies (the platform admin's job).

The registry comes from the snapshot this home accepted (`$JCU_HOME/registry`,
verified against the registry authority's key, brought up to date from
`jcu.registry` first): the walls follow only what the authority signed. The
platform's roles (registry authority, auditors, operators, the admin) come
from `$JCU_HOME/platform.toml`, or `--roles FILE`, or the defaults
(`registry-authority`, `jcu-auditor`, `jcu-operator`, `admin`). The rules are
in `broker.kafka.acl` and docs/deployment.md.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import click

from broker import config
from broker.cli._options import connection_options
from broker.cli._output import console, emit_json, table
from broker.config import Settings
from broker.errors import ConfigError
from broker.files import write_private
from broker.kafka.acl import AclPlan, Member, Roles, drift, plan_acls

ROLES_FILE = "platform.toml"

_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_roles = click.option(
    "--roles",
    "roles_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="TOML file naming the platform's principals: authorities, auditors, operators "
    "(lists of user names), admin (default: $JCU_HOME/platform.toml, else the defaults).",
)
_anchor = click.option(
    "--authority-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The registry authority's public key (authority.pem), trusted from now on by this "
    "home; needed once, before the first snapshot is accepted.",
)
_sync = click.option(
    "--sync/--no-sync",
    default=True,
    show_default=True,
    help="Read jcu.registry to its end first, accepting any newer snapshot the authority signed.",
)


def _roles_of(settings: Settings, roles_file: Path | None) -> Roles:
    path = roles_file or settings.home / ROLES_FILE
    return Roles.load(path) if path.is_file() else Roles()


async def _registry_members(settings: Settings, anchor: Path | None, sync: bool) -> list[Member]:
    from broker.schemas import SchemaStore
    from broker.trust.state import ANCHOR_FILE, TrustedRegistry, load_anchor, registry_dir
    from broker.trust.topic import catch_up

    directory = registry_dir(settings)
    if anchor is not None:
        target = directory / ANCHOR_FILE
        pem = anchor.read_bytes()
        if target.exists() and target.read_bytes() != pem:
            raise ConfigError(
                f"{target} already holds another registry authority key; this home keeps the "
                "key it trusts (a new authority key arrives inside a signed snapshot)"
            )
        load_anchor(anchor)  # refuses what is not an Ed25519 public key
        write_private(target, pem)
    trusted = TrustedRegistry.load(directory, SchemaStore.load(settings.schemas))
    if sync:
        if not (directory / ANCHOR_FILE).exists():
            raise ConfigError(
                f"this home trusts no registry authority key yet ({directory / ANCHOR_FILE}): "
                "pass --authority-key authority.pem"
            )
        await catch_up(settings.kafka, trusted)
    if trusted.current is None:
        click.echo(
            "jcu: note: no registry snapshot accepted in this home yet: only the platform "
            "roles' rules (the authority may then publish the first snapshot)",
            err=True,
        )
        return []
    return [
        Member(p.id, p.community, p.status, p.exercises, p.role)
        for p in trusted.registry.participants.values()
    ]


def _plan(roles_file: Path | None, anchor: Path | None, sync: bool) -> tuple[Settings, AclPlan]:
    settings = config.load()
    members = asyncio.run(_registry_members(settings, anchor, sync))
    return settings, plan_acls(members, _roles_of(settings, roles_file))


@click.group()
def acl() -> None:
    """Kafka principals and ACLs derived from the registry: plan, apply, check."""


@acl.command()
@_roles
@_anchor
@_sync
@_json
@connection_options
def plan(roles_file: Path | None, authority_key: Path | None, sync: bool, as_json: bool) -> None:
    """Print every ACL binding and SCRAM user the registry and the platform roles imply."""
    _, wanted = _plan(roles_file, authority_key, sync)
    if as_json:
        emit_json(
            {
                "rules": [r.as_dict() for r in sorted(wanted.rules)],
                "users": sorted(wanted.users),
                "retired_users": sorted(wanted.retired),
            }
        )
        return
    by_principal: dict[str, list[str]] = defaultdict(list)
    for r in sorted(wanted.rules):
        where = f"{r.resource} {'prefix ' if r.pattern == 'prefixed' else ''}{r.name}"
        by_principal[r.principal].append(f"{r.operation} {where}")
    out = console()
    out.print(
        table(
            f"Kafka walls: {len(wanted.rules)} ACL bindings, {len(wanted.users)} SCRAM users",
            ["principal", "allowed"],
            [[p, "\n".join(rules)] for p, rules in sorted(by_principal.items())],
        )
    )
    if wanted.retired:
        out.print(f"credentials to delete (revoked): {', '.join(sorted(wanted.retired))}")


@acl.command()
@_roles
@_anchor
@_sync
@click.option(
    "--credentials-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where each new SCRAM user's client file (with its generated password, 0600) is "
    "written, with the cluster's CA certificate, for you to hand to its owner.",
)
@click.option(
    "--rotate",
    multiple=True,
    metavar="USER",
    help="Give USER a new generated password (repeatable).",
)
@click.option(
    "--advertise",
    default=None,
    metavar="BOOTSTRAP",
    help="Bootstrap address to write into client files (default: this home's).",
)
@_json
@connection_options
def apply(
    roles_file: Path | None,
    authority_key: Path | None,
    sync: bool,
    credentials_dir: Path | None,
    rotate: tuple[str, ...],
    advertise: str | None,
    as_json: bool,
) -> None:
    """Make the cluster match the plan: add missing ACLs and SCRAM users, remove bindings no
    longer implied, delete revoked organisations' credentials. Idempotent."""
    from broker.kafka.acl_admin import apply_plan

    settings, wanted = _plan(roles_file, authority_key, sync)
    done = asyncio.run(
        apply_plan(
            settings.kafka,
            wanted,
            credentials_dir=credentials_dir,
            rotate=rotate,
            advertise=advertise,
        )
    )
    if as_json:
        emit_json(done.as_dict())
        return
    click.echo(
        f"kafka walls at {settings.kafka.bootstrap}: {len(done.added)} ACL bindings added, "
        f"{len(done.removed)} removed; {len(done.users_created)} users created, "
        f"{len(done.users_deleted)} deleted"
    )
    for user, path in sorted(done.credential_files.items()):
        click.echo(f"  client file for {user}: {path} (hand it over; install as kafka.toml)")


@acl.command()
@_roles
@_anchor
@_sync
@_json
@connection_options
def check(roles_file: Path | None, authority_key: Path | None, sync: bool, as_json: bool) -> None:
    """Compare the cluster with the plan; exit 1 if anything differs (drift)."""
    from broker.kafka.acl_admin import read_walls

    settings, wanted = _plan(roles_file, authority_key, sync)
    found = drift(wanted, asyncio.run(read_walls(settings.kafka, wanted)))
    if as_json:
        emit_json(found.as_dict())
    else:
        for r in found.missing:
            click.echo(f"missing: {r}")
        for r in found.extra:
            click.echo(f"not implied: {r}")
        for u in found.users_missing:
            click.echo(f"missing SCRAM user: {u}")
        for u in found.users_extra:
            click.echo(f"revoked, still has a SCRAM credential: {u}")
        if found.clean:
            click.echo(f"no drift: the cluster at {settings.kafka.bootstrap} matches the registry")
    if not found.clean:
        raise click.exceptions.Exit(1)
