"""`jcu policy check | explain`: validate the rulebook; show who would receive a message and why."""

from __future__ import annotations

from pathlib import Path

import click

from broker import config
from broker.cli._output import console, emit_json, table
from broker.errors import ConfigError
from broker.policy import HANDLING_CODES, TLPS, Message, PolicyEngine, load_scenarios, run_scenarios
from broker.trust.registry import load_registry
from broker.vocabulary import CATEGORIES

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


def _split(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(v.strip() for item in values for v in item.split(",") if v.strip())


@policy.command()
@click.option("--from", "sender", required=True, help="Sending organisation (registry id).")
@click.option(
    "--type", "payload_type", required=True, help="Payload type, e.g. Indicator, IncidentReport."
)
@click.option(
    "--tlp", required=True, type=click.Choice(TLPS, case_sensitive=False), help="TLP 2.0 label."
)
@click.option(
    "--category",
    "categories",
    multiple=True,
    type=click.Choice(CATEGORIES),
    help="Category (repeatable).",
)
@click.option("--personal-data", is_flag=True, help="The message carries personal data.")
@click.option(
    "--handling",
    multiple=True,
    type=click.Choice(HANDLING_CODES, case_sensitive=False),
    help="SIENA handling code (repeatable: all apply).",
)
@click.option(
    "--to", "recipients", multiple=True, help="Named recipients, comma-separated (repeatable)."
)
@click.option("--incident", help="Incident reference.")
@click.option(
    "--member-states", multiple=True, help="Member States affected, comma-separated ISO codes."
)
@click.option("--crisis", is_flag=True, help="Treat the incident as under a declared crisis.")
@click.option("--exercise", help="Exercise id (exercise traffic).")
@_policies_option
@_json_option
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
    crisis: bool,
    exercise: str | None,
    policies_dir: Path | None,
    as_json: bool,
) -> None:
    """Show, for every registered organisation but the sender, whether it would receive
    a message with these labels, by which rules and on which legal basis."""
    engine = _engine(policies_dir)
    registry = engine.registry
    registry.get(sender)
    named = _split(recipients)
    unknown = sorted(n for n in named if n not in registry)
    if unknown:
        raise ConfigError(f"--to names unknown organisations {unknown}; see participants.yaml")
    if crisis and not incident:
        raise ConfigError("--crisis needs --incident (a crisis is declared for an incident)")
    msg = Message(
        sender=sender,
        payload_type=payload_type,
        tlp=tlp.upper(),
        categories=frozenset(categories),
        handling=frozenset(h.upper() for h in handling),
        personal_data=personal_data,
        recipients=named,
        incident=incident,
        member_states=frozenset(s.upper() for s in _split(member_states)),
        exercise=exercise,
    )
    crisis_incidents = frozenset({incident}) if crisis and incident else frozenset()
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
    title = f"{msg.tlp} {msg.payload_type} from {sender} (bundle {engine.bundle_hash[:12]})"
    view = table(title, ("org", "decision", "rules", "legal basis", "why"), rows)
    for column in view.columns[:3]:
        column.no_wrap = True  # ids stay whole, so they can be searched and copied
    console().print(view)
