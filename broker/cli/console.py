"""`jcu console` (serve the operator console) and `jcu console passwd` (its accounts).

The console runs on an organisation's node and shows what that node may see:
the whole audit log (the operator's platform-wide view), the crisis board, the
policy and its what-if, Kafka's figures, and the node's own situation report.
Loopback by default, where it needs no login unless asked; anywhere else it
needs TLS and a login.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click

from broker import config
from broker.cli._node import acting_as, as_option
from broker.cli._options import connection_options, json_option
from broker.cli._output import emit_json
from broker.errors import ConfigError

_PASSWORD_ENV = "JCU_CONSOLE_PASSWORD"  # noqa: S105 - the variable's name, not a password


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, login: bool | None, tls: bool) -> bool:
    """Whether to ask for a login; refuses an unsafe binding with what to do instead."""
    if is_loopback(host):
        return bool(login)
    if login is False:
        raise ConfigError(f"--no-login is for loopback only; {host} needs a login")
    if not tls:
        raise ConfigError(
            f"refusing plain HTTP on {host}: passwords and sessions would cross the network "
            "in clear; give --tls-cert and --tls-key, or serve on 127.0.0.1 behind a TLS proxy"
        )
    return True


#: The Kafka client file of the console's platform view: a principal that is an auditor and
#: an operator (docs/deployment.md). Unset: the node's own, which sees only what it may.
VIEW_CONFIG_ENV = "JCU_CONSOLE_KAFKA_CONFIG"


def public_origin(url: str | None, scheme: str, host: str, port: int) -> str:
    """The console's origin (scheme://host[:port]) as its users reach it: what key sign-in
    tokens are bound to."""
    from urllib.parse import urlsplit

    if url is None:
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(
            f"--public-url {url!r} is not an address like https://console.example.org[:port]"
        )
    if parts.scheme == "http" and scheme == "https":
        raise ConfigError("--public-url is http:// but the console serves https")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def build_data(
    sample_every: float = 15.0,
    refresh_every: float = 2.0,
    audit_key_files: tuple[Path, ...] = (),
) -> object:
    """This node's console data (not started), from its home (the composition): the audit
    leaves it reads are its own and those of the keys in `audit_key_files`."""
    from broker.cli._audit_io import audit_keys, keyring_resolvers
    from broker.cli._node import node_context
    from broker.cli.stats import collect
    from broker.kafka.connection import read_client_file
    from connectors.console import ConsoleData

    ctx, _ = node_context(None)
    keys, valid = keyring_resolvers(ctx.settings, ctx.envelope.store)
    view_file = os.environ.get(VIEW_CONFIG_ENV)
    view = read_client_file(Path(view_file)) if view_file else None
    return ConsoleData(
        ctx,
        keys=keys,
        valid=valid,
        stats=collect,
        sample_every=sample_every,
        refresh_every=refresh_every,
        view=view,
        audit_keys=audit_keys(ctx.settings, audit_key_files),
    )


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="TCP port.")
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate chain: serve HTTPS (needed off loopback).",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert.",
)
@click.option(
    "--login/--no-login",
    default=None,
    help="Ask for a login (default: only off loopback, where it is required).",
)
@click.option(
    "--public-url",
    default=None,
    metavar="URL",
    help="The address people open the console at (behind a proxy, or when bound to "
    "0.0.0.0); key sign-in tokens are bound to it. Default: scheme://host:port.",
)
@click.option(
    "--key-sign-in/--no-key-sign-in",
    default=True,
    show_default=True,
    help="With a login: let the auditor of any active organisation sign in with a token its "
    "own node signs (`jcu console sign-in CHALLENGE`), without an account here.",
)
@click.option(
    "--sample-every",
    type=click.FloatRange(min=1),
    default=15.0,
    show_default=True,
    help="Seconds between health samples (lag, rates, dead letters).",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve Prometheus metrics (audit verification, lag) on 127.0.0.1:PORT.",
)
@click.option(
    "--audit-keys",
    "audit_key_files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Audit keys other organisations gave this console (`jcu audit keys export`): a "
    "file or a directory of *.key files (repeatable). Without them it shows this node's "
    "own logs' contents, and verifies (but cannot read) the others.",
)
@click.pass_context
@connection_options
def console(
    click_ctx: click.Context,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    login: bool | None,
    public_url: str | None,
    key_sign_in: bool,
    sample_every: float,
    metrics_port: int | None,
    audit_key_files: tuple[Path, ...],
) -> None:
    """Serve the operator console: flows, messages, audit, health, policy, crisis board and
    the situation report, each page with a JSON twin under /api.

    Accounts: `jcu console passwd NAME --role operator|auditor`. The audit, health and lag
    pages read Kafka as the principal of JCU_CONSOLE_KAFKA_CONFIG (a client file of a
    principal that is both an auditor and an operator, e.g. jcu-console from `jcu acl
    apply`); without it, as this node, which may read neither the audit topics nor the
    dead letters.

    Auditors of other organisations sign in without an account: their node signs this
    console's challenge (`jcu console sign-in`).
    """
    if click_ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from connectors.console import USERS_FILE, ConsoleData, ConsoleUsers, create_app

    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("give both --tls-cert and --tls-key, or neither")
    ask = check_binding(host, login, tls_cert is not None)
    settings = config.load()
    me = acting_as(None, settings)
    users = ConsoleUsers(settings.home / USERS_FILE)
    if ask and not users.names() and not key_sign_in:
        raise ConfigError(
            f"no console accounts on this node ({users.path}): "
            f"run `jcu console passwd NAME --role operator` (or --role auditor) first"
        )
    scheme = "https" if tls_cert else "http"
    origin = public_origin(public_url, scheme, host, port)
    data = build_data(sample_every, audit_key_files=audit_key_files)
    assert isinstance(data, ConsoleData)  # noqa: S101 - narrows for mypy: build_data's type
    if metrics_port is not None:
        data.metrics.serve(metrics_port)
    sign_in = None
    if ask and key_sign_in:
        from broker.trust.sign_in import SignInVerifier

        sign_in = SignInVerifier(me, origin, data.ctx.envelope.trusted)
    app = create_app(
        data,
        users if ask else None,
        login=ask,
        secure_cookies=tls_cert is not None,
        sign_in=sign_in,
    )
    how = "no login: loopback, local operator"
    if ask:
        how = "login required" + (
            f"; auditors of other organisations sign in with their node's key for {origin}"
            if sign_in
            else ""
        )
        if not users.names():
            how += f"; no password accounts on this node ({users.path}), so no operator"
    click.echo(f"operator console of {me}: {scheme}://{host}:{port}/ ({how})", err=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=5,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
    )
    server.run()


@console.command()
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["operator", "auditor"]),
    required=True,
    help="operator: the platform-wide view; auditor: this node's organisation only.",
)
@as_option("The organisation an auditor account audits")
@click.option(
    "--from-env",
    "env_var",
    default=None,
    help=f"Read the password from this environment variable (e.g. {_PASSWORD_ENV}) "
    "instead of stdin.",
)
@json_option()
def passwd(
    name: str, role: str, participant: str | None, env_var: str | None, as_json: bool
) -> None:
    """Set the console password of account NAME on this node (stored as a scrypt hash)."""
    from connectors.console import USERS_FILE, ConsoleUsers

    settings = config.load()
    org = acting_as(participant, settings)
    if env_var is not None:
        password = os.environ.get(env_var)
        if not password:
            raise ConfigError(f"environment variable {env_var} is not set or empty")
    elif sys.stdin.isatty():
        password = click.prompt(
            f"console password for {name}", hide_input=True, confirmation_prompt=True
        )
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    users = ConsoleUsers(settings.home / USERS_FILE)
    users.set_password(name, password, role, org if role == "auditor" else None)  # type: ignore[arg-type]
    if as_json:
        emit_json(
            {
                "name": name,
                "role": role,
                "organisation": org if role == "auditor" else None,
                "users_file": str(users.path),
            }
        )
        return
    what = "operator (platform-wide)" if role == "operator" else f"auditor of {org}"
    click.echo(f"console account {name} set: {what}, in {users.path}")


@console.command("sign-in")
@click.argument("challenge")
@as_option("The organisation whose auditor signs in")
@click.option("--json", "as_json", is_flag=True, help="Print the token and what it says as JSON.")
@connection_options
def sign_in(challenge: str, participant: str | None, as_json: bool) -> None:
    """Sign in to a console of another node as this node's organisation's auditor.

    CHALLENGE is what that console's login page shows. This signs a statement (this
    organisation, role auditor, the challenge, the console's node and address, the time)
    with this node's current signing key and prints a token: paste it into the login page
    at the address it names, and nowhere else. It is good once, until the challenge
    expires (a few minutes). The console checks it against the registry.
    """
    from broker.cli._node import catch_up_if_empty
    from broker.clock import utc_now
    from broker.envelope.context import EnvelopeContext
    from broker.trust.sign_in import Challenge, key_id_of, sign_token

    parsed = Challenge.parse(challenge)
    now = utc_now()
    if now >= parsed.expires:
        raise ConfigError(
            f"that challenge expired at {parsed.expires:%H:%M:%S} UTC: reload the console's "
            "login page and sign the fresh one"
        )
    settings = config.load()
    me = acting_as(participant, settings)
    asyncio.run(catch_up_if_empty(settings))
    ctx = EnvelopeContext.load(settings)
    kid = key_id_of(ctx.trusted, me, now)
    token = sign_token(parsed, me, kid, ctx.keystore.signing_key(me, kid))
    if as_json:
        from broker.cli._output import emit_json

        emit_json(
            {
                "token": token,
                "participant": me,
                "role": "auditor",
                "key_id": kid,
                "console": parsed.console,
                "origin": parsed.origin,
                "expires": parsed.expires.isoformat(),
            }
        )
        return
    click.echo(
        f"sign-in token for the auditor of {me} (signed with key {kid}) on the console of "
        f"{parsed.console} at {parsed.origin}, good once until {parsed.expires:%H:%M:%S} UTC; "
        f"paste it into the login page at {parsed.origin} and nowhere else:",
        err=True,
    )
    click.echo(token)


def serve_in_background(data: object, host: str, port: int) -> tuple[object, asyncio.Task[None]]:
    """For `jcu demo --serve`: the console without login on loopback, on the running loop."""
    import uvicorn

    from connectors.console import ConsoleData, create_app

    if not is_loopback(host):
        # Without login the console is the node's data for anyone who reaches it: loopback only.
        raise ConfigError(f"the console without login is for loopback only, not {host}")
    assert isinstance(data, ConsoleData)  # noqa: S101 - narrows for mypy: the demo's data
    server = uvicorn.Server(
        uvicorn.Config(create_app(data, login=False), host=host, port=port, log_level="warning")
    )
    return server, asyncio.get_running_loop().create_task(server.serve())
