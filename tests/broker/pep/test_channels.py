"""Several channels of one participant at once: two `jcu subscribe --group` processes, each
with its own ledger and its own audit log; and several sinks in one subscriber."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from broker.pep.subscriber import receive_side
from tests.broker.pep.conftest import World
from tests.broker.pep.kafka_io import jcu_auditor, publish_red, spawn_subscriber
from tests.hooks import HookServer

pytestmark = pytest.mark.kafka
_MESSAGE_ID = re.compile(r'"message_id": "([^"]+)"')


def _ids(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    found = (_MESSAGE_ID.search(line) for line in path.read_text().splitlines())
    return Counter(m.group(1) for m in found if m is not None)


async def _until_delivered(
    proc: subprocess.Popen[bytes], sink: Path, wanted: set[str], log: Path
) -> None:
    """Until every one of `wanted` is in `sink`; the subscriber must keep running."""
    deadline = time.monotonic() + 180
    while not wanted <= set(_ids(sink)):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "not delivered in 180 s"
        await asyncio.sleep(0.2)


async def test_two_channels_of_one_participant_run_at_once_each_audited_on_its_own(
    world: World, tmp_path: Path
) -> None:
    ours = set(await publish_red(world, 6))
    a, b = world.group("enisa", "a"), world.group("enisa", "b")
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    first = spawn_subscriber(world, "enisa", tmp_path / "a", a, "--no-receipts", log=log_a)
    try:
        await _until_delivered(first, tmp_path / "a" / "enisa.jsonl", ours, log_a)
        # The first one still runs (it never stops by itself): the second starts beside it.
        second = spawn_subscriber(world, "enisa", tmp_path / "b", b, "--no-receipts", log=log_b)
        try:
            await _until_delivered(second, tmp_path / "b" / "enisa.jsonl", ours, log_b)
            assert first.poll() is None
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(second.wait, 60) == 0, log_b.read_text()
    finally:
        first.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.wait, 60) == 0, log_a.read_text()

    for group in (a, b):
        point = f"enisa/{receive_side('enisa', group)}"
        done = await jcu_auditor(world, "audit", "query", "--ep", point, "--json")
        assert done.returncode == 0, done.stderr
        decided = Counter(
            r["message_id"] for r in json.loads(done.stdout) if r["action"] == "receive"
        )
        assert {m: decided[m] for m in ours} == dict.fromkeys(ours, 1), point
    verified = await jcu_auditor(world, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    reports = json.loads(verified.stdout)["enforcement_points"]
    results = {p["enforcement_point"]: p["result"] for p in reports}
    assert results[f"enisa/{receive_side('enisa', a)}"] == "ok"
    assert results[f"enisa/{receive_side('enisa', b)}"] == "ok"


async def test_misp_files_and_a_webhook_in_one_subscriber_each_get_every_record_once(
    world: World, tmp_path: Path
) -> None:
    """`--format misp --out DIR --webhook URL`: both sinks; the webhook down for a while
    holds the batch, and the MISP side, given the same records again, keeps one copy."""
    ours = set(await publish_red(world, 4))
    group = world.group("enisa", "two-sinks")
    log = tmp_path / "subscriber.log"
    with HookServer("down") as hook:
        proc = spawn_subscriber(
            world,
            "enisa",
            tmp_path / "misp",
            group,
            "--format",
            "misp",
            "--webhook",
            hook.url,
            "--no-receipts",
            log=log,
        )
        try:
            await asyncio.to_thread(hook.wait_for, refused=3)
            hook.set("up")
            deadline = time.monotonic() + 180
            while not ours <= set(hook.accepted):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "not delivered in 180 s"
                await asyncio.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 60) == 0, log.read_text()
    assert {m: hook.accepted[m] for m in ours} == dict.fromkeys(ours, 1)
    # An indicator in MISP format is a MISP event file of its own, named by its message id.
    files = {m: sorted(p.name for p in (tmp_path / "misp").glob(f"{m}*")) for m in ours}
    assert all(len(names) == 1 for names in files.values()), files
