"""`jcu init --participant ORG`: one organisation's node, its own keys, a registration request.

Only this organisation's keys are made, in its own home (JCU_HOME, created
0700); the registry authority approves the request it writes (`jcu authority
approve`), exports a signed snapshot and anyone publishes it (`jcu registry
publish`). Nothing here touches Kafka.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from broker import config
from broker.cli._output import emit_json
from broker.errors import ConfigError, RegistryError
from broker.schemas import SchemaStore
from broker.trust.keystore import Keystore
from broker.trust.node import NodeHome, RequestFile, register
from broker.trust.passphrase import passphrase_from_env
from broker.trust.registry import Participant, load_registry, parse_registry
from broker.vocabulary import Kem


def claim_for(participant: str, facts: Path | None, policies: Path) -> tuple[Participant, Kem]:
    """The facts this organisation claims: from `facts` (its own entry, or a whole
    registry file), else from the registry source this installation ships."""
    base = load_registry(policies / "participants.yaml")
    if facts is None:
        return base.get(participant), base.kem_of(participant)
    try:
        data = yaml.safe_load(facts.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {facts}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{facts}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and "participants" not in data:
        communities = {c.name: {"kem": c.kem} for c in base.communities.values()}
        data = {"version": 1, "communities": communities, "participants": [data]}
    try:
        registry = parse_registry(data, source=str(facts))
        return registry.get(participant), registry.kem_of(participant)
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None


def _print(node: NodeHome, request: RequestFile, anchor: str | None) -> None:
    click.echo(f"node {node.participant}: home {node.root} (0700), keys of {node.participant} only")
    for k in request.keys:
        click.echo(f"  {k.purpose:<8} {k.algorithm:<15} {k.key_id}")
    click.echo(f"registration request: {request.path}")
    click.echo(f"fingerprint: {request.fingerprint}")
    click.echo(
        "next: give the request to the registry authority and read it the fingerprint over "
        "another channel; it runs `jcu authority approve REQUEST --fingerprint ...`"
    )
    if anchor is None:
        click.echo(
            "then install the authority's public key with `jcu registry trust authority.pem`"
        )
    else:
        click.echo(f"trusting registry authority key {anchor}")


@click.command()
@click.option("--participant", required=True, metavar="ORG", help="This organisation's id.")
@click.option(
    "--authority-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The registry authority's public key (authority.pem) to trust; "
    "or later with `jcu registry trust`.",
)
@click.option(
    "--facts",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="YAML with this organisation's registry entry (id, name, community, role, "
    "mandates), if the shipped participants.yaml lacks it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def init(participant: str, authority_key: Path | None, facts: Path | None, as_json: bool) -> None:
    """Make this organisation's node: its own keys and a registration request.

    JCU_HOME becomes this organisation's home and holds no other private key.
    The new keys are encrypted with a passphrase from JCU_KEY_PASSPHRASE, the file
    named by JCU_KEY_PASSPHRASE_FILE (mode 0600) or, at a terminal, a prompt; it
    must be strong (12 characters or more, hard to guess).
    """
    settings = config.load()
    claim, kem = claim_for(participant, facts, settings.policies)
    passphrase = passphrase_from_env(purpose=f"the new keys of {participant}", new=True)
    pem = authority_key.read_bytes() if authority_key else None
    node = NodeHome.create(settings.home, participant)
    anchor = node.install_anchor(pem) if pem is not None else None
    store = SchemaStore.load(settings.schemas)
    request = register(node, Keystore(node.keystore_dir, passphrase), store, claim, kem)
    if as_json:
        out: dict[str, Any] = {
            "participant": participant,
            "home": str(node.root),
            **request.to_json(),
            "authority_key_id": anchor,
        }
        emit_json(out)
        return
    _print(node, request, anchor)
