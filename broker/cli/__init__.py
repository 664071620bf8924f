"""The `jcu` command: one entry point, one verb per job.

Verbs live in their own modules and are imported only when invoked, so
`jcu --help` stays fast and a verb's dependencies never load for another.
To add a verb, add one line to `_VERBS` (and its summary to `_SUMMARIES`).
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

#: verb name -> its summary (the first sentence of its help) for `jcu --help`, which so
#: imports no verb (tests/broker/cli/test_startup.py checks each against its verb's help).
_SUMMARIES: dict[str, str] = {
    "acl": "Kafka principals and ACLs derived from the registry: plan, apply, check.",
    "assist": (
        "Mutual assistance: request help on behalf of Member States, offer, accept, report, "
        "close; `list` is the board of cases this node knows."
    ),
    "audit": (
        "Verify the audit log, prove a decision is in it, witness other logs, and ask it what "
        "was decided and why."
    ),
    "authority": (
        "The registry authority: approve organisations, revoke keys, export signed snapshots."
    ),
    "capabilities": (
        "The capability inventory: what each participant could deploy for mutual assistance."
    ),
    "console": (
        "Serve the operator console: flows, messages, audit, health, policy, crisis board and "
        "the situation report, each page with a JSON twin under /api."
    ),
    "crisis": "Declare, end and list crises (only eu-cyclone and csirts-network may declare).",
    "demo": "Run the whole sharing scenario end to end on a local Kafka, from nothing.",
    "dlq": (
        "Dead letters: records a subscriber refused (bad signature, policy, replay...), with "
        "the reason."
    ),
    "init": "Make this organisation's node: its own keys and a registration request.",
    "kafka": (
        "A local Apache Kafka cluster (KRaft, Maven Central jars, loopback, SASL_SSL and ACLs) "
        "and the contract's topics."
    ),
    "keys": "This node's keys: list the registry's, ask for a rotation or a revocation.",
    "open": "Verify and decrypt one envelope as a participant; print the record and its sender.",
    "policy": "The Cedar rulebook: validate it, and explain its decisions.",
    "publish": "Publish a record, or every object of a STIX bundle, MISP event or CSV file.",
    "receipts": (
        "Show what became of MESSAGE_ID per organisation: delivered (when), rejected (why), "
        "pending (no receipt yet), denied (by which rules), retracted."
    ),
    "registry": "Registry snapshots: publish one, or see and update what this node trusts.",
    "retract": (
        "Retract MESSAGE_ID, or a whole publication (--file, --event): a signed retraction goes"
        " to exactly the recipients of each message."
    ),
    "seal": "Seal one JSON record for the named recipients: encrypt for each, sign as this node.",
    "siena": "SIENA-style connector: publish case message files, deliver them into a mailbox.",
    "sitrep": (
        "Write the Integrated EU Cybersecurity Situation Report of this node's organisation."
    ),
    "soc": "SOC connector: publish STIX bundles, MISP events and indicator CSVs.",
    "stats": (
        "Counts, lag and rates across the whole broker: topics, every consumer group (lag in "
        "records, partitions never committed on counted from their start, and in seconds), dead"
        " letters."
    ),
    "subscribe": (
        "Receive what this node's organisation is entitled to: verify, decrypt, re-check, "
        "deliver once."
    ),
    "taxii": "A read-only TAXII 2.1 server over the STIX objects a participant has received.",
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
        assert isinstance(command, click.Command)  # noqa: S101 - narrows for mypy: the verb table names commands
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each verb with its summary, as click lists them, without importing the verbs (one
        without a summary in `_SUMMARIES` is imported for its help)."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            summary = _SUMMARIES.get(name)
            # A bare command of that help shortens it as click would the verb's own.
            command = click.Command(name, help=summary) if summary else self.get_command(ctx, name)
            rows.append((name, command.get_short_help_str(limit) if command is not None else ""))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


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
    """Console-script entry: deliberate errors become one line on stderr and exit 1; usage
    errors (a missing or bad option) one line and exit 2."""
    from broker.cli._early import unlock_early

    early = unlock_early(sys.argv[1:] if argv is None else argv)
    try:
        rv = cli.main(args=argv, prog_name="jcu", standalone_mode=False, obj=early)
        # click returns the code of a `click.exceptions.Exit` raised in a verb.
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        return rv
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        # One line, naming the option and where to read how to use it; exit 2 (usage).
        message = " ".join(exc.format_message().split())
        where = exc.ctx.command_path if exc.ctx is not None else "jcu"
        click.echo(f"jcu: usage error: {message} (see `{where} --help`)", err=True)
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
