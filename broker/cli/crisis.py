"""`jcu crisis declare | end | list`: crisis state that widens AMBER sharing (rule 10)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import click

from broker.cli._labels import split_csv
from broker.cli._node import as_option, node_context
from broker.cli._options import connection_options, json_option, member_states_option
from broker.cli._output import console, emit_json, table
from broker.clock import utc_now
from broker.errors import ConfigError
from broker.pep.control import (
    DEFAULT_CRISIS_VALIDITY,
    MAX_CRISIS_VALIDITY,
    CrisisBoard,
    CrisisDeclaration,
    check_validity,
    enact,
)


def _declare_options(f: click.decorators.FC) -> click.decorators.FC:
    f = connection_options(json_option()(f))
    f = click.option("--incident", required=True, help="Incident reference.")(f)
    f = as_option("Declaring participant (eu-cyclone or csirts-network)")(f)
    return f


_member_states_help = "Member States affected, comma-separated (FR,DE)."


def _as_json(d: CrisisDeclaration) -> dict[str, object]:
    """A declaration as `--json` prints it (`crisis list` adds its state and requests)."""
    return {
        "incident": d.incident,
        "active": d.active,
        "member_states": list(d.member_states),
        "declared_by": d.declared_by,
        "time": d.created.isoformat(),
        "expires": d.expires.isoformat(),
    }


@click.group()
def crisis() -> None:
    """Declare, end and list crises (only eu-cyclone and csirts-network may declare)."""


@crisis.command()
@_declare_options
@member_states_option(required=True, help=_member_states_help + " Two or more.")
@click.option(
    "--days",
    type=int,
    default=DEFAULT_CRISIS_VALIDITY.days,
    show_default=True,
    help=(
        f"Days the declaration stands (1 to {MAX_CRISIS_VALIDITY.days}). Declare again to "
        "extend it: bounded, an old declaration replayed after compaction cannot re-open "
        "a crisis for long."
    ),
)
def declare(
    participant: str | None, incident: str, as_json: bool, member_states: tuple[str, ...], days: int
) -> None:
    """Declare a crisis: AMBER messages about the incident reach every operational participant.

    Declaring an incident again replaces its declaration with a newer one.
    """
    try:
        valid_for = timedelta(days=days)
    except OverflowError:
        raise ConfigError(f"--days {days} is out of range") from None
    check_validity(valid_for)  # before the keystore is opened: a bad --days needs no key
    ctx, declarer = node_context(participant)
    decl = asyncio.run(enact(ctx, declarer, incident, split_csv(member_states), True, valid_for))
    if as_json:
        emit_json(_as_json(decl))
        return
    click.echo(f"crisis declared for {incident} by {declarer}, for {days} days")


@crisis.command()
@_declare_options
@member_states_option(
    help=_member_states_help + " Optional: by default those of the declaration in force."
)
def end(
    participant: str | None, incident: str, as_json: bool, member_states: tuple[str, ...]
) -> None:
    """End the crisis for INCIDENT (an error if none is in force)."""
    ctx, declarer = node_context(participant)
    decl = asyncio.run(enact(ctx, declarer, incident, split_csv(member_states), False))
    if as_json:
        emit_json(_as_json(decl))
        return
    click.echo(f"crisis ended for {incident} by {declarer}")


@crisis.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include ended and expired crises.")
@click.option(
    "--no-sync",
    "no_sync",
    is_flag=True,
    help="List the open assistance requests as this node last read them.",
)
@json_option()
@connection_options
def list_(show_all: bool, no_sync: bool, as_json: bool) -> None:
    """Show the crises in force (verified declarations on jcu.control), each with the open
    assistance requests about its incident that this node knows."""
    from broker.cli.assist import open_requests_by_incident

    ctx, me = node_context(None)

    async def read() -> tuple[CrisisDeclaration, ...]:
        async with CrisisBoard(ctx.envelope, ctx.settings.kafka) as board:
            return board.declarations()

    now = utc_now()
    decls = [d for d in asyncio.run(read()) if show_all or d.in_force(now)]
    requests = open_requests_by_incident(ctx, me, sync=not no_sync)
    if as_json:
        emit_json(
            [
                {
                    **_as_json(d),
                    "state": _state(d, now),
                    "open_requests": [s.to_json() for s in requests.get(d.incident, [])],
                }
                for d in decls
            ]
        )
        return
    console().print(
        table(
            "crises",
            ["incident", "state", "member states", "by", "since", "until", "open requests"],
            [
                [
                    d.incident,
                    _state(d, now),
                    ",".join(d.member_states),
                    d.declared_by,
                    d.created.isoformat(),
                    d.expires.isoformat(),
                    "; ".join(
                        f"{s.id[:8]} {s.requester} {s.state.lower()} ({s.offers} offers)"
                        for s in requests.get(d.incident, [])
                    )
                    or "-",
                ]
                for d in decls
            ],
        )
    )


def _state(d: CrisisDeclaration, now: datetime) -> str:
    """active, expired (declared, but past its expiry: not in force) or ended."""
    if not d.active:
        return "ended"
    return "active" if d.in_force(now) else "expired"
