"""A node runs only the Cedar bundle the registry authority approved: the snapshot carries
its hash, a node whose rules differ refuses to start, and one that learns of a snapshot its
rules do not match stops acting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from broker.envelope import Labels
from broker.errors import ConfigError
from broker.pep import Publisher
from broker.trust.registry import parse_registry
from broker.trust.snapshot import canonical_facts
from tests.broker.pep.kafka_io import private_audit
from tests.broker.pep.records import indicator
from tests.world import World

pytestmark = pytest.mark.kafka


def _snapshot_with_hash(world: World, tmp_path: Path, bundle_hash: str) -> bytes:
    authority = world.authority_copy(tmp_path / "authority")
    source = world.settings("authority").policies / "participants.yaml"
    document = yaml.safe_load(source.read_text())
    registry = parse_registry(document)
    return authority.export(canonical_facts(document), registry, bundle_hash).data


def test_a_node_whose_rules_are_not_the_approved_ones_refuses_to_start(
    world: World, tmp_path: Path
) -> None:
    other = _snapshot_with_hash(world, tmp_path, "f" * 64)
    with pytest.raises(ConfigError, match="not the one the registry authority approved"):
        world.node_copy("soc-fr", tmp_path / "soc-fr", other)


async def test_a_running_node_stops_acting_when_the_approved_bundle_changes(
    world: World, tmp_path: Path
) -> None:
    ctx = world.node_copy("soc-fr", tmp_path / "soc-fr")
    assert ctx.trust_failure is None
    ctx.envelope.trusted.offer(_snapshot_with_hash(world, tmp_path, "e" * 64))
    assert ctx.trust_failure is not None and "JCU_POLICIES" in ctx.trust_failure
    # A copy of the node: its audit log apart, not a fork of the session node's.
    audit = await private_audit(world, ctx, "publish", tmp_path / "audit")
    async with Publisher("soc-fr", ctx, audit=audit) as pub:
        with pytest.raises(ConfigError, match="approved"):
            await pub.publish("Indicator", indicator(), labels=Labels.of("GREEN"))
