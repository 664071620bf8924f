"""Derived message ids on the real broker: the sender's index sends an object version once,
and a receiver refuses a second copy of an id as a replay even when the sender forgot it."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from broker.envelope import Labels
from broker.pep import Publication, Publisher, SourceRef
from tests.broker.pep.kafka_io import dead_letters, drain, private_audit
from tests.broker.pep.records import indicator
from tests.world import World

pytestmark = pytest.mark.kafka
LABELS = Labels.of("GREEN", categories=("malicious-code",))


def _item(sid: str, version: str, value: str) -> Publication:
    record = dict(indicator(value), id=str(uuid.uuid4()))
    return Publication("Indicator", record, LABELS, source=SourceRef(sid, version, "bundle--t"))


async def test_the_sender_sends_an_object_version_once_and_a_new_version_again(
    world: World,
) -> None:
    sid = f"indicator--{uuid.uuid4()}"
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        (first,) = await pub.publish_many([_item(sid, "v1", "198.51.100.21")])
        (again,) = await pub.publish_many([_item(sid, "v1", "198.51.100.21")])
        (newer,) = await pub.publish_many([_item(sid, "v2", "198.51.100.21")])
        with pytest.raises(Exception, match="two items of one batch"):
            await pub.publish_many([_item(sid, "v3", "x"), _item(sid, "v3", "y")])
    assert first.copies and not first.already_sent
    assert again.message_id == first.message_id and again.already_sent
    assert again.copies == () and set(again.already_sent_to) == set(first.recipients)
    assert newer.message_id != first.message_id and newer.copies


async def test_a_receiver_refuses_a_second_copy_when_the_sender_lost_its_index(
    world: World, tmp_path: Path
) -> None:
    """A node restored from a backup older than its last publish sends the object again
    under the same id; the receiver delivers it once and dead-letters the copy as a replay."""
    forgetful = world.node_copy("soc-fr", tmp_path / "restored")  # before the publish below
    sid = f"indicator--{uuid.uuid4()}"
    value = f"198.51.{uuid.uuid4().bytes[0]}.33"
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        (sent,) = await pub.publish_many([_item(sid, "v1", value)])
    audit = await private_audit(world, forgetful, "publish", tmp_path / "audit")
    async with Publisher("soc-fr", forgetful, audit=audit) as pub:
        (resent,) = await pub.publish_many([_item(sid, "v1", value)])
    assert resent.message_id == sent.message_id and resent.copies  # it did send again
    receiver = sent.recipients[0]
    _, lines = await drain(world, receiver, tmp_path / "sink")
    mine = [line for line in lines if line["message_id"] == sent.message_id]
    assert len(mine) == 1
    assert "replay" in await dead_letters(world, sent.message_id, receiver)


async def test_an_organisation_the_first_publication_did_not_reach_gets_its_copy(
    world: World,
) -> None:
    """The same object version for more named recipients: only the new one gets a copy (under
    the same id); who had it is not sent it again."""
    sid = f"indicator--{uuid.uuid4()}"
    item = _item(sid, "v1", "198.51.100.44")
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        (first,) = await pub.publish_many([dataclasses.replace(item, recipients=("enisa",))])
        (wider,) = await pub.publish_many(
            [dataclasses.replace(item, recipients=("enisa", "cert-eu"))]
        )
        assert pub.already_sent(first.message_id) is not None
        index = pub.sent.get(first.message_id)
    assert first.recipients == ("enisa",)
    assert wider.message_id == first.message_id
    assert wider.recipients == ("cert-eu",) and wider.already_sent_to == ("enisa",)
    assert index is not None and index.recipients == {"enisa", "cert-eu"}
