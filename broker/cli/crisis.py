"""`jcu crisis declare | end | list`: crisis state that widens AMBER sharing (rule 10)."""

from __future__ import annotations

import asyncio

import click

from broker import config
from broker.audit import AuditRecord
from broker.cli._labels import split_csv
from broker.cli._output import console, emit_json, table
from broker.errors import Unauthorised
from broker.pep.context import PepContext
from broker.pep.control import (
    CrisisBoard,
    CrisisDeclaration,
    publish_declaration,
    sign_declaration,
)


async def _publish(
    ctx: PepContext, declarer: str, incident: str, states: list[str], active: bool
) -> None:
    audit = ctx.audit_log(declarer, "control")
    async with audit:
        try:
            data = sign_declaration(ctx.envelope, declarer, incident, tuple(states), active)
        except Unauthorised as exc:
            await audit.append(
                AuditRecord.from_rejection(
                    exc,
                    organisation=declarer,
                    message_id=f"crisis:{incident}",
                    action="publish",
                    bundle_hash=ctx.policy.bundle_hash,
                )
            )
            raise
        await publish_declaration(ctx.settings.bootstrap, incident, data)


def _declare_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option(
        "--member-states",
        required=True,
        multiple=True,
        help="Member States affected (ISO codes, comma-separated; two or more).",
    )(f)
    f = click.option("--incident", required=True, help="Incident reference.")(f)
    f = click.option("--as", "declarer", required=True, help="eu-cyclone or csirts-network.")(f)
    return f


@click.group()
def crisis() -> None:
    """Declare, end and list crises (only eu-cyclone and csirts-network may declare)."""


@crisis.command()
@_declare_options
def declare(declarer: str, incident: str, member_states: tuple[str, ...]) -> None:
    """Declare a crisis: AMBER messages about the incident reach every operational participant."""
    ctx = PepContext.load(config.load())
    asyncio.run(_publish(ctx, declarer, incident, split_csv(member_states), True))
    click.echo(f"crisis declared for {incident} by {declarer}")


@crisis.command()
@_declare_options
def end(declarer: str, incident: str, member_states: tuple[str, ...]) -> None:
    """End the crisis for INCIDENT."""
    ctx = PepContext.load(config.load())
    asyncio.run(_publish(ctx, declarer, incident, split_csv(member_states), False))
    click.echo(f"crisis ended for {incident} by {declarer}")


@crisis.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include ended crises.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(show_all: bool, as_json: bool) -> None:
    """Show the crises in force (verified declarations on jcu.control)."""
    ctx = PepContext.load(config.load())

    async def read() -> tuple[CrisisDeclaration, ...]:
        async with CrisisBoard(ctx.envelope, ctx.settings.bootstrap) as board:
            return board.declarations()

    decls = [d for d in asyncio.run(read()) if show_all or d.active]
    if as_json:
        emit_json(
            [
                {
                    "incident": d.incident,
                    "active": d.active,
                    "member_states": list(d.member_states),
                    "declared_by": d.declared_by,
                    "time": d.created.isoformat(),
                }
                for d in decls
            ]
        )
        return
    console().print(
        table(
            "crises",
            ["incident", "state", "member states", "by", "since"],
            [
                [
                    d.incident,
                    "active" if d.active else "ended",
                    ",".join(d.member_states),
                    d.declared_by,
                    d.created.isoformat(),
                ]
                for d in decls
            ],
        )
    )
