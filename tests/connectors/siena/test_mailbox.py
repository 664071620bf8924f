"""SIENA-style case messages through the CLI on the real broker: H2 reaches the named only."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from broker.pep import Subscriber
from broker.schemas import SchemaStore
from connectors.siena import read_case_message
from connectors.siena.mailbox import MailboxSink
from tests.connectors.siena.test_format import sample
from tests.world import World


def jcu(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env=world.env_for(args),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.kafka
async def test_h2_case_message_reaches_only_its_recipient_who_acknowledges(
    world: World, tmp_path: Path
) -> None:
    inbox, mailbox = tmp_path / "inbox", tmp_path / "mailbox"
    inbox.mkdir()
    case_id = str(uuid.uuid4())
    (inbox / "request.json").write_text(
        json.dumps(sample(id=case_id, recipients=["cert-eu"], handling_codes=["H2"], tlp="AMBER"))
    )
    # a file claiming another sender than the one publishing it is refused, not sent
    (inbox / "forged.json").write_text(json.dumps(sample(id=str(uuid.uuid4()), sender="cert-eu")))

    sent = jcu(world, "siena", "inbox", str(inbox), "--as", "europol-ec3",
               "--category", "fraud", "--json")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    by_file = {d["file"]: d for d in map(json.loads, sent.stdout.splitlines())}
    ok = by_file["request.json"]
    assert ok["ok"] and ok["summary"]["message_id"] == case_id
    assert ok["summary"]["recipients"] == ["cert-eu"]
    assert [c["topic"] for c in ok["summary"]["copies"]] == ["jcu.civilian.assistance"]
    assert (inbox / "done" / "request.json").exists()
    forged = by_file["forged.json"]
    assert not forged["ok"] and "--as cert-eu" in forged["reason"]
    assert "--as cert-eu" in (inbox / "failed" / "forged.json.reason.txt").read_text()
    assert sorted(p.name for p in inbox.iterdir()) == ["done", "failed"]

    got = jcu(world, "siena", "deliver", "--as", "cert-eu", "--mailbox", str(mailbox),
              "--once", "--group", world.group("cert-eu"), "--json")  # fmt: skip
    assert got.returncode == 0, got.stderr
    (delivered,) = mailbox.glob(f"*-{case_id}.json")
    original = read_case_message(inbox / "done" / "request.json")
    assert read_case_message(delivered).record == original.record

    # civilian organisations that were not named get nothing (nor does anyone else)
    for other in ("enisa", "isac-energy"):
        sink = MailboxSink(tmp_path / other)
        sub = Subscriber(other, world.ctx(other), sink, group_id=world.group(other), receipts=False)
        async with sub:
            await sub.run(until_idle=True)
        assert case_id not in sink.written
        assert not list((tmp_path / other).glob(f"*-{case_id}.json"))

    receipts = jcu(world, "receipts", case_id, "--as", "europol-ec3", "--json")
    assert receipts.returncode == 0, receipts.stderr
    shown = json.loads(receipts.stdout)["recipients"]
    assert [(r["org"], r["state"]) for r in shown if r["received"]] == [("cert-eu", "delivered")]


async def test_mailbox_sink_is_idempotent(store: SchemaStore, tmp_path: Path) -> None:
    from tests.connectors.isac.test_subscriber import delivery

    case = read_case_message_from(sample(), tmp_path)
    # As the subscriber hands it over: from the case's own sender, under the case's id.
    d = delivery(store, "CaseMessage", case, sender=case["sender"], message_id=str(case["id"]))
    sink = MailboxSink(tmp_path / "mailbox")
    await sink.deliver(d)
    await sink.deliver(d)
    await sink.flush()  # the batch's files, written at once
    (only,) = (tmp_path / "mailbox").iterdir()
    assert read_case_message(only).record == case
    again = MailboxSink(tmp_path / "mailbox")  # redelivered after a crash: the same file
    await again.deliver(d)
    await again.close()
    assert list((tmp_path / "mailbox").iterdir()) == [only]


def read_case_message_from(doc: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(doc))
    return read_case_message(path).record
