"""The subscriber's own state under faults: a full disk at the ledger, a corrupt ledger, a
lost ledger. Each gives one line and stops before delivering anything more; afterwards
each delivery has one receipt and one audit record."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

from broker.envelope import Labels
from broker.pep.receipts import receipts_of
from broker.pep.subscriber import ledger_path, receive_side
from tests.broker.pep.conftest import World
from tests.broker.pep.kafka_io import jcu_auditor, publish_red, spawn_subscriber

pytestmark = pytest.mark.kafka
RED = Labels.of("RED")


def _sink_ids(out: Path) -> Counter[str]:
    """Message ids of the sink's delivery lines (a retraction line, in enisa's backlog, names
    the message it withdraws: not a second delivery)."""
    path = out / "enisa.jsonl"
    if not path.exists():
        return Counter()
    lines = (json.loads(line) for line in path.read_text().splitlines())
    return Counter(str(o["message_id"]) for o in lines if not o.get("retracted"))


async def _run(
    world: World, out: Path, group: str, log: Path, *extra: str, fault: str | None = None
) -> tuple[int, str]:
    """`jcu subscribe --once` as enisa; its exit code and the last line it wrote."""
    start = log.stat().st_size if log.exists() else 0
    proc = spawn_subscriber(
        world,
        "enisa",
        out,
        group,
        "--once",
        *extra,
        log=log,
        env={"JCU_FAULT": fault} if fault else None,
    )
    code = await asyncio.to_thread(proc.wait, 180)
    text = log.read_text()[start:]
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    return code, lines[-1] if lines else ""


async def _receipts(world: World, ids: set[str]) -> Counter[str]:
    """Acknowledgements of each message of `ids` in the receipts soc-fr got, as signed (a
    batch acknowledged twice counts twice here, before `jcu receipts` folds them)."""
    got = await receipts_of(world.ctx("soc-fr"), "soc-fr")
    return Counter(v.message_id for v in got.signed if v.message_id in ids)


async def _audited(world: World, group: str) -> Counter[str]:
    """Deliveries audited by `group` in its own receive log, per message id (a refused copy
    of a delivered message, in enisa's backlog, is a decision on another record)."""
    point = f"enisa/{receive_side('enisa', group)}"  # the channel's own log
    done = await jcu_auditor(world, "audit", "query", "--ep", point, "--json")
    assert done.returncode == 0, done.stderr
    return Counter(
        r["message_id"]
        for r in json.loads(done.stdout)
        if r["details"].get("group") == group
        and r["action"] == "receive"
        and r["decision"] != "reject"
    )


async def test_a_full_disk_at_the_ledger_stops_with_one_line_and_repeats_nothing(
    world: World, tmp_path: Path
) -> None:
    ours = set(await publish_red(world, 25, "192.0.2"))
    out, log = tmp_path / "out", tmp_path / "subscriber.log"
    group = world.group("enisa", "full-disk")

    # The disk is full from the start: one line, nothing delivered.
    code, last = await _run(world, out, group, log, fault="ledger.commit@1:ENOSPC")
    assert code == 1, last
    assert last.startswith("jcu: error: the delivery ledger ") and "could not be written" in last
    assert "No space left on device" in last and "free space" in last, last
    assert _sink_ids(out) == Counter()

    # The disk fills after the first batch reached the sink, the receipts and the audit log.
    code, last = await _run(
        world, out, group, log, "--batch-size", "10", fault="ledger.commit@2:ENOSPC"
    )
    assert code == 1 and "No space left on device" in last, last

    # Freed: every delivery once, with one receipt and one receiving decision.
    code, last = await _run(world, out, group, log, "--batch-size", "10")
    assert code == 0, last
    delivered = _sink_ids(out)
    assert {m: delivered[m] for m in ours} == dict.fromkeys(ours, 1)
    assert [m for m, n in delivered.items() if n > 1] == []
    audited = await _audited(world, group)
    assert {m: audited[m] for m in ours} == dict.fromkeys(ours, 1)
    assert [m for m, n in audited.items() if n > 1] == [], "a delivery audited twice"
    assert await _receipts(world, ours) == dict.fromkeys(ours, 1)


async def test_a_corrupt_ledger_gives_one_line_and_delivers_nothing(
    world: World, tmp_path: Path
) -> None:
    await publish_red(world, 1, "192.0.2")
    out, log = tmp_path / "out", tmp_path / "subscriber.log"
    group = world.group("enisa", "corrupt-ledger")
    ledger = ledger_path(world.home("enisa"), "enisa", group)
    ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.write_bytes(b"not a ledger at all\n" * 400)
    code, last = await _run(world, out, group, log)
    assert code == 1, last
    assert last.startswith(f"jcu: error: the delivery ledger {ledger} is unreadable"), last
    assert "--rebuild-ledger" in last
    assert _sink_ids(out) == Counter()


async def test_a_missing_ledger_is_refused_unless_the_operator_rebuilds_it(
    world: World, tmp_path: Path
) -> None:
    ours = set(await publish_red(world, 3, "192.0.2"))
    out, log = tmp_path / "out", tmp_path / "subscriber.log"
    group = world.group("enisa", "lost-ledger")
    assert (await _run(world, out, group, log))[0] == 0
    ledger = ledger_path(world.home("enisa"), "enisa", group)
    for path in ledger.parent.glob(f"{ledger.name}*"):
        path.unlink()  # the ledger and its WAL

    # The sink holds deliveries: refused.
    code, last = await _run(world, out, group, log)
    assert code == 1 and f"the delivery ledger {ledger} of channel {group} is missing" in last
    assert "--rebuild-ledger" in last
    assert not ledger.exists()
    # Into an empty directory, the group's committed offsets still tell: refused.
    code, last = await _run(world, tmp_path / "elsewhere", group, log)
    assert code == 1 and "has committed offsets" in last, last
    assert _sink_ids(tmp_path / "elsewhere") == Counter()

    code, last = await _run(world, out, group, log, "--rebuild-ledger")
    assert code == 0, last
    delivered = _sink_ids(out)
    assert {m: delivered[m] for m in ours} == dict.fromkeys(ours, 1)
