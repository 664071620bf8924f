"""The `jcu` command: one entry point, one verb per job.

Verbs live in their own modules and are imported only when invoked, so
`jcu --help` stays fast and a verb's dependencies never load for another.
To add a verb, add one line to `_VERBS`.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from broker import __version__
from broker.errors import JcuError

# verb name -> "module:attribute" of a click command or group
_VERBS: dict[str, str] = {
    "acl": "broker.cli.acl:acl",
    "audit": "broker.cli.audit:audit",
    "demo": "broker.cli.demo:demo",
    "dlq": "broker.cli.dlq:dlq",
    "kafka": "broker.cli.kafka:kafka",
    "init": "broker.cli.init:init",
    "authority": "broker.cli.authority:authority",
    "registry": "broker.cli.registry:registry",
    "keys": "broker.cli.keys:keys",
    "seal": "broker.cli.seal:seal",
    "open": "broker.cli.seal:open_",
    "policy": "broker.cli.policy:policy",
    "taxii": "broker.cli.taxii:taxii",
    "publish": "broker.cli.publish:publish",
    "retract": "broker.cli.retract:retract",
    "subscribe": "broker.cli.subscribe:subscribe",
    "receipts": "broker.cli.receipts:receipts",
    "crisis": "broker.cli.crisis:crisis",
    "stats": "broker.cli.stats:stats",
    "soc": "broker.cli.soc:soc",
    "siena": "broker.cli.siena:siena",
    "sitrep": "broker.cli.sitrep:sitrep",
    "console": "broker.cli.console:console",
    "assist": "broker.cli.assist:assist",
    "capabilities": "broker.cli.capabilities:capabilities",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _VERBS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jcu")
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    envvar="JCU_LOG_FORMAT",
    help="Log lines as readable text or JSON (services).",
)
@click.option("--log-level", default="WARNING", show_default=True, envvar="JCU_LOG_LEVEL")
def cli(log_format: str, log_level: str) -> None:
    """jcu: the EU Joint Cyber Unit's need-to-share broker (operator CLI)."""
    from broker import logs

    logs.configure("json" if log_format == "json" else "console", log_level)


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry: deliberate errors become one line on stderr and exit 1."""
    try:
        rv = cli.main(args=argv, prog_name="jcu", standalone_mode=False)
        # click returns the code of a `click.exceptions.Exit` raised in a verb.
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        return rv
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("jcu: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except JcuError as exc:
        click.echo(f"jcu: error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # disk full, permission denied, a path that is not there
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"jcu: error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("jcu: interrupted", err=True)
        sys.exit(130)
