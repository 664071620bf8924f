"""Revocation that bites, on the real broker: data topics carry the broker's append time, a
backdated record is refused, and a key revoked as compromised refuses everything appended
after the revocation whatever date it was signed with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.clock import to_millis, utc_now
from broker.envelope import Labels
from broker.envelope.checks import APPEND_SKEW
from tests.broker.pep.kafka_io import dead_letters, drain, produce
from tests.broker.pep.records import indicator
from tests.world import World

pytestmark = pytest.mark.kafka
TOPIC = "jcu.civilian.indicators"


def _sealed_at(world: World, sender: str, created_ago: timedelta) -> tuple[bytes, str]:
    """An envelope `sender` signs with its real key, claiming to be `created_ago` old."""
    when = to_millis(utc_now() - created_ago)
    sealer = world.ctx(sender).envelope.sealer(sender, clock=lambda: when)
    sealed = sealer.seal(
        "Indicator", indicator(), recipients=["enisa"], topic=TOPIC, labels=Labels.of("RED")
    )
    return sealed.data, sealed.message_id


async def test_a_record_signed_long_before_the_broker_appended_it_is_refused(
    world: World, tmp_path: Path
) -> None:
    old, old_id = _sealed_at(world, "soc-fr", APPEND_SKEW + timedelta(minutes=5))
    fresh, fresh_id = _sealed_at(world, "soc-fr", timedelta(minutes=1))
    await produce(world, TOPIC, old, key=old_id)
    await produce(world, TOPIC, fresh, key=fresh_id)
    _, lines = await drain(world, "enisa", tmp_path)
    delivered = {x["message_id"] for x in lines}
    assert fresh_id in delivered and old_id not in delivered
    assert await dead_letters(world, old_id, "enisa") == ["backdated"]


async def test_a_key_revoked_as_compromised_refuses_a_backdated_record(
    world: World, tmp_path: Path
) -> None:
    """The thief of cert-eu's key signs with a date before the revocation, within the append
    skew, and gets it appended after: refused. A genuine record appended before the
    revocation still arrives."""
    before, before_id = _sealed_at(world, "cert-eu", timedelta(0))
    appended = await produce(world, TOPIC, before, key=before_id)
    # revoked after the broker appended it, by the broker's clock (not ours)
    revoked_at = max(
        utc_now(), to_millis(datetime.fromtimestamp(appended.timestamp / 1000, UTC))
    ) + timedelta(milliseconds=1)
    authority = world.authority_copy(tmp_path / "authority")  # the session's stays as it is
    authority.revoke("cert-eu", "compromised", at=revoked_at)
    snapshot = world.export(authority=authority)
    receiver = world.node_copy("enisa", tmp_path / "enisa", snapshot)

    # signed as made a minute before the revocation: within the skew, so only the
    # compromise rule can refuse it
    stolen, stolen_id = _sealed_at(
        world, "cert-eu", timedelta(minutes=1) + (utc_now() - revoked_at)
    )
    await produce(world, TOPIC, stolen, key=stolen_id)
    _, lines = await drain(world, "enisa", tmp_path, ctx=receiver)
    delivered = {x["message_id"] for x in lines}
    assert before_id in delivered
    assert stolen_id not in delivered
    assert await dead_letters(world, stolen_id, "enisa") == ["revoked-key"]
    # a node that does not know of the revocation yet (the session's) still takes it: the
    # window docs/trust.md states
    _, unaware = await drain(world, "enisa", tmp_path / "unaware")
    assert stolen_id in {x["message_id"] for x in unaware}
