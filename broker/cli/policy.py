"""`jcu policy check | explain`: validate the rulebook; show who would receive a message and why."""

from __future__ import annotations

from pathlib import Path

import click

from broker import config
from broker.cli._options import (
    category_option,
    connection_options,
    eu_member_states,
    handling_option,
    member_states_option,
    payload_type_option,
    tlp_option,
)
from broker.cli._output import console, emit_json, table
from broker.errors import ConfigError
from broker.policy import Message, PolicyEngine, load_scenarios, run_scenarios
from broker.trust.registry import load_registry

_policies_option = click.option(
    "--policies",
    "policies_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory with participants.yaml, *.cedarschema, *.cedar (default: $JCU_POLICIES).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _engine(policies_dir: Path | None) -> PolicyEngine:
    """Load the registry and the bundle; the schema store tells which fields are personal data."""
    from broker.schemas import default_store

    directory = policies_dir or config.load().policies
    registry = load_registry(directory / "participants.yaml")
    return PolicyEngine.load(
        directory, registry, personal_data_fields=default_store().personal_data_fields
    )


@click.group()
def policy() -> None:
    """The Cedar rulebook: validate it, and explain its decisions."""


@policy.command()
@_policies_option
@_json_option
def check(policies_dir: Path | None, as_json: bool) -> None:
    """Validate the bundle and run its scenario tables (policies/tests/*.yaml).

    Exits non-zero if the bundle does not load or any scenario fails.
    """
    engine = _engine(policies_dir)
    directory = policies_dir or config.load().policies
    results = run_scenarios(engine, load_scenarios(directory / "tests"))
    failed = [r for r in results if not r.passed]
    if as_json:
        emit_json(
            {
                "bundle_hash": engine.bundle_hash,
                "rules": len(engine.rules),
                "scenarios": [
                    {
                        "file": r.file,
                        "name": r.name,
                        "passed": r.passed,
                        "failures": list(r.failures),
                    }
                    for r in results
                ],
            }
        )
    else:
        files = ", ".join(engine.files)
        click.echo(f"bundle {engine.bundle_hash[:16]}: {len(engine.rules)} rules valid ({files})")
        for r in results:
            click.echo(f"{'PASS' if r.passed else 'FAIL'}  {r.file}: {r.name}")
            for failure in r.failures:
                click.echo(f"      {failure}")
        click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise click.exceptions.Exit(1)


def _crisis_state(incident: str | None, assume: bool | None) -> tuple[frozenset[str], str]:
    """The incidents under crisis for this explanation, and where that came from."""
    if assume is not None:
        if incident is None:
            raise ConfigError(
                "--crisis and --no-crisis need --incident (a crisis is declared for an incident)"
            )
        return (frozenset({incident}) if assume else frozenset()), (
            f"{incident} assumed {'under' if assume else 'not under'} a crisis"
        )
    if incident is None:
        return frozenset(), "no incident named"
    active = _live_crises()
    state = "under a declared crisis" if incident in active else "under no crisis"
    return active, f"{incident} {state} (live board)"


def _live_crises() -> frozenset[str]:
    """The incidents under a declared, unexpired crisis now, read from jcu.control and
    checked against this node's registry snapshot, as a publisher does."""
    import asyncio
    from dataclasses import dataclass

    from broker.errors import JcuError
    from broker.pep.control import CrisisBoard
    from broker.schemas import SchemaStore
    from broker.trust.keyring import Keyring
    from broker.trust.state import TrustedRegistry, registry_dir

    settings = config.load()

    @dataclass(frozen=True)
    class _View:
        store: SchemaStore
        keyring: Keyring

    hint = "; or say what to assume with --crisis / --no-crisis"
    try:
        store = SchemaStore.load(settings.schemas)
        trusted = TrustedRegistry.load(registry_dir(settings), store)
        trusted.registry  # noqa: B018  (raises, saying what to do, if there is none)
    except JcuError as exc:
        raise ConfigError(f"the live crisis board needs a node's registry ({exc}){hint}") from None

    async def read() -> frozenset[str]:
        async with CrisisBoard(_View(store, trusted.keyring), settings.kafka) as board:
            return board.active_incidents()

    try:
        return asyncio.run(read())
    except JcuError as exc:
        raise ConfigError(f"cannot read the live crisis board: {exc}{hint}") from None


def _split(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(v.strip() for item in values for v in item.split(",") if v.strip())


@policy.command()
@click.option("--from", "sender", required=True, help="Sending organisation (registry id).")
@payload_type_option(required=True, help="Payload type, e.g. Indicator, IncidentReport.")
@tlp_option(required=True)
@category_option()
@click.option("--personal-data", is_flag=True, help="The message carries personal data.")
@handling_option()
@click.option(
    "--to", "recipients", multiple=True, help="Named recipients, comma-separated (repeatable)."
)
@click.option("--incident", help="Incident reference.")
@member_states_option()
@click.option(
    "--crisis/--no-crisis",
    default=None,
    help="Assume the incident is (or is not) under a declared crisis. Default: what the live "
    "crisis board on jcu.control says now, as a publish would see it.",
)
@click.option("--exercise", help="Exercise id (exercise traffic).")
@_policies_option
@_json_option
@connection_options
def explain(
    sender: str,
    payload_type: str,
    tlp: str,
    categories: tuple[str, ...],
    personal_data: bool,
    handling: tuple[str, ...],
    recipients: tuple[str, ...],
    incident: str | None,
    member_states: tuple[str, ...],
    crisis: bool | None,
    exercise: str | None,
    policies_dir: Path | None,
    as_json: bool,
) -> None:
    """Show, for every registered organisation but the sender, whether it would receive
    a message with these labels, by which rules and on which legal basis.

    The crisis state is the live one (jcu.control, read as a publisher reads it)
    unless --crisis or --no-crisis says what to assume."""
    engine = _engine(policies_dir)
    registry = engine.registry
    registry.get(sender)
    named = _split(recipients)
    unknown = sorted(n for n in named if n not in registry)
    if unknown:
        raise ConfigError(f"--to names unknown organisations {unknown}; see participants.yaml")
    msg = Message(
        sender=sender,
        payload_type=payload_type,
        tlp=tlp,
        categories=frozenset(categories),
        handling=frozenset(handling),
        personal_data=personal_data,
        recipients=named,
        incident=incident,
        member_states=frozenset(eu_member_states(member_states)),
        exercise=exercise,
    )
    crisis_incidents, crisis_source = _crisis_state(incident, crisis)
    decisions = engine.decide_all(msg, crisis_incidents=crisis_incidents)
    if as_json:
        emit_json([d.to_dict() for d in decisions])
        return
    rows = [
        (
            d.org,
            d.decision + (f" (-{', '.join(d.redact_fields)})" if d.redact_fields else ""),
            "\n".join(d.rules),
            "\n".join(d.legal_basis),
            "\n".join(d.reasons),
        )
        for d in decisions
    ]
    title = (
        f"{msg.tlp} {msg.payload_type} from {sender} (bundle {engine.bundle_hash[:12]}; "
        f"crisis: {crisis_source})"
    )
    view = table(title, ("org", "decision", "rules", "legal basis", "why"), rows)
    for column in view.columns[:3]:
        column.no_wrap = True  # ids stay whole, so they can be searched and copied
    console().print(view)
