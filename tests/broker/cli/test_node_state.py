"""A node's state is its own (files 0600 in 0700 directories, a looser home refused), and
`jcu receipts MSG` says per organisation what became of a message (issue 14)."""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from broker.envelope import Labels
from broker.pep import JsonlSink, Publisher, Subscriber
from tests.broker.pep.kafka_io import drain
from tests.broker.pep.records import indicator
from tests.world import World

pytestmark = pytest.mark.kafka


def _jcu(world: World, org: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env={**world.env(org), **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


#: Public material a home may hold readable by others: the CA certificate that signed the
#: brokers' (a trust anchor; neither secret nor state).
PUBLIC = {"kafka-ca.pem"}


def _loose(root: Path) -> list[str]:
    """Everything under `root` (itself included) that another account could read or enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or path.name in PUBLIC:
            continue
        if mode & 0o077:
            found.append(f"{oct(mode & 0o777)} {path.relative_to(root)}")
    return found


def _indicator(value: str) -> dict[str, object]:
    return dict(indicator(value), id=str(uuid.uuid4()))


async def test_every_state_file_a_publish_and_a_subscriber_write_is_private(
    world: World, tmp_path: Path
) -> None:
    csv = tmp_path / "perms.csv"
    a, b = uuid.uuid4().bytes[:2]
    csv.write_text(f"type,value\nipv4-addr,233.{a}.{b}.7\n")
    out = await asyncio.to_thread(
        _jcu, world, "soc-fr", "publish", "--as", "soc-fr", "--csv", str(csv), "--tlp",
        "GREEN", "--category", "malicious-code", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    receiver = json.loads(out.stdout)["objects"][0]["received_by"][0]
    home = world.home("soc-fr")
    for wanted in ("sent", "progress", "audit"):
        assert (home / wanted).is_dir()
    assert _loose(home) == []

    sink_dir = tmp_path / "received" / "deep"
    await drain(world, receiver, sink_dir)
    assert (sink_dir / f"{receiver}.jsonl").exists()
    assert _loose(sink_dir) == []  # the decrypted records and their directory
    assert _loose(world.home(receiver)) == []  # its ledgers, audit state, keys


async def test_a_home_open_to_others_is_refused_with_what_to_run(
    world: World, tmp_path: Path
) -> None:
    copy = tmp_path / "home"
    shutil.copytree(world.home("soc-fr"), copy)
    copy.chmod(0o755)
    env = {"JCU_HOME": str(copy)}
    for verb in (("publish", "--record", str(tmp_path / "x.json"), "--type", "Indicator",
                  "--tlp", "GREEN"), ("receipts",), ("keys", "list")):  # fmt: skip
        out = await asyncio.to_thread(_jcu, world, "soc-fr", *verb, **env)
        assert out.returncode == 1, (verb, out.stderr)
        (line,) = out.stderr.strip().splitlines()
        assert line == (
            f"jcu: error: JCU_HOME={copy} is open to other accounts (mode 0755); run "
            f"`chmod 700 {copy}` (and check who could read it) before using it"
        )
    copy.chmod(0o700)
    ok = await asyncio.to_thread(_jcu, world, "soc-fr", "keys", "list", **env)
    assert ok.returncode == 0, ok.stderr


async def test_receipts_show_per_recipient_delivered_pending_denied_and_retracted(
    world: World, tmp_path: Path
) -> None:
    a, b = uuid.uuid4().bytes[:2]
    labels = Labels.of("AMBER", categories=("malicious-code",))
    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        result = await pub.publish("Indicator", _indicator(f"233.{a}.{b}.9"), labels=labels)
    mid = result.message_id
    assert result.recipients and result.denied
    first, *others = result.recipients
    sub = Subscriber(
        first,
        world.ctx(first),
        JsonlSink(tmp_path / "sink.jsonl"),
        group_id=world.group(first),
        receipts=True,
    )
    async with sub:
        await sub.run(until_idle=True)

    out = await asyncio.to_thread(
        _jcu, world, "soc-fr", "receipts", mid, "--as", "soc-fr", "--json"
    )
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["message_id"] == mid and shown["known_here"] and not shown["retracted"]
    by = {r["org"]: r for r in shown["recipients"]}
    assert by[first]["state"] == "delivered" and by[first]["received"]
    assert by[first]["decided"] == "allow"
    for org in others:
        assert (by[org]["state"], by[org]["received"]) == ("pending", None)
    for denial in result.denied:
        row = by[denial.org]
        assert (row["state"], row["decided"]) == ("denied", "deny")
        assert row["detail"] == ", ".join(denial.rules)
    assert set(by) == set(result.recipients) | {d.org for d in result.denied}

    table = await asyncio.to_thread(_jcu, world, "soc-fr", "receipts", mid)
    assert table.returncode == 0, table.stderr
    assert "delivered" in table.stdout and "pending" in table.stdout and "denied" in table.stdout

    async with Publisher("soc-fr", world.ctx("soc-fr")) as pub:
        await pub.retract(mid, "test")
    after = await asyncio.to_thread(_jcu, world, "soc-fr", "receipts", mid, "--json")
    shown = json.loads(after.stdout)
    assert shown["retracted"] and all(
        r["retracted"] for r in shown["recipients"] if r["decided"] == "allow"
    )


async def test_receipts_with_a_wrong_passphrase_is_an_error_not_an_empty_list(
    world: World,
) -> None:
    out = await asyncio.to_thread(
        _jcu, world, "soc-fr", "receipts", "--as", "soc-fr",
        JCU_KEY_PASSPHRASE="not the passphrase",
    )  # fmt: skip
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("jcu: error: cannot decrypt") and "wrong passphrase" in line
    assert "no receipts yet" not in out.stderr


@pytest.mark.parametrize("verb", ["publish", "subscribe"])
async def test_publish_or_subscribe_with_a_wrong_passphrase_is_one_error_and_nothing_moves(
    world: World, tmp_path: Path, verb: str
) -> None:
    """The key is opened while the node connects (the keystore unlocks meanwhile): a wrong
    passphrase still ends the run with its one error, no summary, nothing delivered."""
    bundle = tmp_path / "one.json"
    bundle.write_text(
        json.dumps(
            {
                "type": "bundle",
                "id": f"bundle--{uuid.uuid4()}",
                "objects": [
                    {
                        "type": "indicator",
                        "spec_version": "2.1",
                        "id": f"indicator--{uuid.uuid4()}",
                        "created": "2026-11-27T10:00:00.000Z",
                        "modified": "2026-11-27T10:00:00.000Z",
                        "pattern_type": "stix",
                        "pattern": "[ipv4-addr:value = '198.51.100.77']",
                        "valid_from": "2026-11-27T10:00:00Z",
                    }
                ],
            }
        )
    )
    org = "soc-fr" if verb == "publish" else "enisa"
    args = (
        ["publish", "--stix", str(bundle), "--to", "enisa", "--json"]
        if verb == "publish"
        else ["subscribe", "--once", "--out", str(tmp_path / "out"), "--group", "enisa.wrongpw"]
    )
    out = await asyncio.to_thread(_jcu, world, org, *args, JCU_KEY_PASSPHRASE="not the passphrase")
    assert out.returncode == 1 and out.stdout == ""
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("jcu: error: cannot decrypt") and "wrong passphrase" in line
    assert "not the passphrase" not in out.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
