"""`jcu taxii serve | passwd | collections`: a TAXII 2.1 server over what a participant received."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click

from broker import config
from broker.cli._node import acting_as, as_option
from broker.cli._options import json_option
from broker.cli._output import console, emit_json, table
from broker.errors import ConfigError

_PASSWORD_ENV = "JCU_TAXII_PASSWORD"  # noqa: S105 - the variable's name, not a password

_as_option = as_option("Participant whose received objects to serve")
_store_option = click.option(
    "--store",
    "store_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The participant's TAXII store (default: $JCU_HOME/taxii/<participant>.sqlite3).",
)
_users_option = click.option(
    "--users",
    "users_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Password file of salted scrypt hashes (default: $JCU_HOME/taxii-users.json).",
)


def _check_participant(participant: str | None) -> str:
    """This node's organisation (TAXII serves what it received, from its own home)."""
    return acting_as(participant)


def _paths(participant: str, store_file: Path | None, users_file: Path | None) -> tuple[Path, Path]:
    from connectors.taxii import USERS_FILE, store_path

    home = config.load().home
    return store_file or store_path(home, participant), users_file or home / USERS_FILE


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.group()
def taxii() -> None:
    """A read-only TAXII 2.1 server over the STIX objects a participant has received."""


@taxii.command()
@_as_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8021, show_default=True, help="TCP port to listen on.")
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate chain: serve HTTPS (needed off loopback: Basic sends passwords).",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert.",
)
@_store_option
@_users_option
def serve(
    participant: str | None,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    store_file: Path | None,
    users_file: Path | None,
) -> None:
    """Serve PARTICIPANT's collections (HTTP Basic; only PARTICIPANT may read them)."""
    import uvicorn

    from connectors.taxii import TaxiiStore, TaxiiUsers, create_app

    participant = _check_participant(participant)
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("give both --tls-cert and --tls-key, or neither")
    if tls_cert is None and not _is_loopback(host):
        raise ConfigError(
            f"refusing plain HTTP on {host}: Basic authentication would send passwords in "
            "clear; give --tls-cert and --tls-key, or serve on 127.0.0.1 behind a TLS proxy"
        )
    store_path, users_path = _paths(participant, store_file, users_file)
    users = TaxiiUsers(users_path)
    if participant not in users.users():
        raise ConfigError(
            f"{participant} has no TAXII password in {users_path}: "
            f"run `jcu taxii passwd {participant}` first"
        )
    store = TaxiiStore(store_path, participant)
    store.open_sync()
    try:
        app = create_app(store, participant, users)
        scheme = "http" if tls_cert is None else "https"
        click.echo(
            f"TAXII 2.1 for {participant}: {scheme}://{host}:{port}/taxii2/ (store {store_path})",
            err=True,
        )
        server_config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=5,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
        uvicorn.Server(server_config).run()
    finally:
        store.close_sync()


@taxii.command()
@click.argument("participant", required=False)
@click.option(
    "--from-env",
    "env_var",
    default=None,
    help=f"Read the password from this environment variable (e.g. {_PASSWORD_ENV}) "
    "instead of stdin.",
)
@_users_option
@json_option()
def passwd(
    participant: str | None, env_var: str | None, users_file: Path | None, as_json: bool
) -> None:
    """Set PARTICIPANT's TAXII password (read from stdin or --from-env; stored hashed)."""
    from connectors.taxii import TaxiiUsers

    participant = _check_participant(participant)
    if env_var is not None:
        password = os.environ.get(env_var)
        if not password:
            raise ConfigError(f"environment variable {env_var} is not set or empty")
    elif sys.stdin.isatty():
        password = click.prompt(
            f"TAXII password for {participant}", hide_input=True, confirmation_prompt=True
        )
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    _, users_path = _paths(participant, None, users_file)
    TaxiiUsers(users_path).set_password(participant, password)
    if as_json:
        emit_json({"participant": participant, "users_file": str(users_path)})
        return
    click.echo(f"TAXII password set for {participant} in {users_path}")


@taxii.command()
@_as_option
@_store_option
@json_option()
def collections(participant: str | None, store_file: Path | None, as_json: bool) -> None:
    """List PARTICIPANT's TAXII collections (one per stream it receives)."""
    from connectors.taxii import CollectionInfo, TaxiiStore

    participant = _check_participant(participant)
    store_path, _ = _paths(participant, store_file, None)

    async def read() -> list[CollectionInfo]:
        async with TaxiiStore(store_path, participant) as store:
            return await store.collections()

    infos = asyncio.run(read()) if store_path.exists() else []
    rows = [{"id": i.id, "topic": i.topic, "title": i.title} for i in infos]
    if as_json:
        emit_json(rows)
    else:
        console().print(
            table(
                f"TAXII collections of {participant}",
                ["id", "topic", "title"],
                [list(r.values()) for r in rows],
            )
        )
