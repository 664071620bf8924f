"""`jcu seal` and `jcu open` as operators run them, each from its own organisation's node
(subprocesses on the test federation): seal is behind the policy and the audit log; a node
opens only what is addressed to its own keys, and acts as no other organisation."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.world import World

pytestmark = pytest.mark.kafka

JCU = [sys.executable, "-m", "broker.cli"]
INDICATOR = {
    "id": "2f4c1e8a-52c5-4d4b-9b35-8d1f2f0f9a11",
    "observable_type": "domain-name",
    "value": "bad.example",
    "valid_from": "2026-11-27T10:00:00Z",
    "labels": ["phishing", "ünïcode ✓"],
}
RECORD = json.dumps(INDICATOR).encode()


def run(
    world: World, org: str, *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    """`jcu ARGS` run by `org`'s node."""
    return subprocess.run(
        [*JCU, *args], input=stdin, env=world.env(org), capture_output=True, timeout=120
    )


def seal(world: World, sender: str, to: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return run(world, sender, "seal", "--to", to, "--type", "Indicator", *extra, stdin=RECORD)


def one_line(out: subprocess.CompletedProcess[bytes]) -> str:
    lines = out.stderr.decode().strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in lines[0]
    return lines[0]


def test_seal_on_one_node_open_on_others(world: World) -> None:
    sealed = seal(world, "cert-eu", "enisa,eeas-intcen", "--tlp", "RED")
    assert sealed.returncode == 0, sealed.stderr
    assert sealed.stdout[:2] == b"\xc3\x01"
    for who in ("enisa", "eeas-intcen"):  # X25519 and the ML-KEM hybrid, each from its home
        opened = run(world, who, "open", stdin=sealed.stdout)
        assert opened.returncode == 0, opened.stderr
        record = json.loads(opened.stdout)
        assert record["value"] == "bad.example"
        assert record["labels"] == INDICATOR["labels"]
        assert b"from cert-eu" in opened.stderr
    as_json = json.loads(run(world, "eeas-intcen", "open", "--json", stdin=sealed.stdout).stdout)
    assert as_json["verified_sender"] == "cert-eu"
    assert as_json["header"]["topic"] == "jcu.civilian.indicators"
    assert as_json["header"]["tlp"] == "RED"
    assert "labels" not in as_json["header"]  # only the recipients see them
    assert as_json["labels"]["tlp"] == "RED"


def test_seal_is_audited_in_the_senders_log(world: World) -> None:
    sealed = seal(world, "cert-eu", "enisa", "--tlp", "RED")
    assert sealed.returncode == 0, sealed.stderr
    opened = json.loads(run(world, "enisa", "open", "--json", stdin=sealed.stdout).stdout)
    message_id = opened["header"]["message_id"]
    explained = subprocess.run(
        [*JCU, "audit", "query", "--message", message_id, "--json"],
        # cert-eu's home (its audit keys open its leaves), an auditor's Kafka principal: the
        # audit topics are read by auditors only
        env=world.auditor_env("cert-eu"),
        capture_output=True,
        timeout=120,
    )
    assert explained.returncode == 0, explained.stderr
    rows = json.loads(explained.stdout)
    assert {r["enforcement_point"] for r in rows} == {"cert-eu/seal"}
    assert {r["organisation"]: r["decision"] for r in rows}["enisa"] == "allow"
    # The recipient reads its message, not the sender's audit log: its own principal may not
    # read the audit topics, and an auditor with its home's keys finds that log sealed.
    refused = run(world, "enisa", "audit", "query", "--message", message_id, "--json")
    assert refused.returncode == 1 and b"may not read jcu.audit.decisions" in refused.stderr
    theirs = subprocess.run(
        [*JCU, "audit", "query", "--message", message_id, "--json"],
        env=world.auditor_env("enisa"),
        capture_output=True,
        timeout=120,
    )
    assert theirs.returncode == 0 and json.loads(theirs.stdout) == []


def test_seal_refuses_a_recipient_the_policy_does_not_allow(world: World) -> None:
    # a sector ISAC has no mandate for fraud: AMBER+fraud is not for it
    out = seal(world, "cert-eu", "enisa,isac-energy", "--tlp", "AMBER", "--category", "fraud")
    assert out.returncode == 1 and out.stdout == b""
    line = one_line(out)
    assert "does not allow isac-energy" in line and "nothing sealed" in line


def test_a_node_opens_nothing_addressed_to_another_and_cannot_act_as_it(
    world: World, tmp_path: Path
) -> None:
    sealed = seal(world, "soc-fr", "cert-eu", "--tlp", "RED")
    assert sealed.returncode == 0, sealed.stderr
    # isac-energy's node has no key of cert-eu's ...
    own = run(world, "isac-energy", "open", stdin=sealed.stdout)
    assert own.returncode == 1 and "not-a-recipient" in one_line(own) and own.stdout == b""
    # ... and may not pretend to be cert-eu
    pretend = run(world, "isac-energy", "open", "--as", "cert-eu", stdin=sealed.stdout)
    assert pretend.returncode == 1 and pretend.stdout == b""
    assert "this node is isac-energy" in one_line(pretend)
    for argv in (
        ["seal", "--as", "cert-eu", "--to", "enisa", "--type", "Indicator", "--tlp", "RED"],
        ["publish", "--as", "cert-eu", "--record", str(tmp_path / "x"), "--type", "Indicator"],
        ["subscribe", "--as", "cert-eu", "--once"],
        ["receipts", "--as", "cert-eu"],
        ["crisis", "declare", "--as", "eu-cyclone", "--incident", "I", "--member-states", "FR,DE"],
    ):
        out = run(world, "isac-energy", *argv, stdin=RECORD)
        assert out.returncode == 1, argv
        assert "this node is isac-energy" in one_line(out), argv
    # the owner's own node opens it
    assert run(world, "cert-eu", "open", stdin=sealed.stdout).returncode == 0


def test_shell_pipeline_between_two_nodes(world: World, tmp_path: Path) -> None:
    (tmp_path / "rec.json").write_text(json.dumps(INDICATOR))
    cmd = " ".join(shlex.quote(c) for c in JCU)
    sender = " ".join(f"{k}={shlex.quote(v)}" for k, v in world.federation.env("cert-eu").items())
    receiver = " ".join(
        f"{k}={shlex.quote(v)}" for k, v in world.federation.env("europol-ec3").items()
    )
    # the test is of a shell pipeline; every word in it is quoted
    out = subprocess.run(  # noqa: S602
        f"env {sender} {cmd} seal --to europol-ec3 --type Indicator --tlp GREEN "
        f"--in {tmp_path / 'rec.json'} | env {receiver} {cmd} open",
        shell=True,
        env=world.env("enisa"),
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["value"] == "bad.example"


def test_topic_override_must_match_on_both_sides(world: World) -> None:
    topic = "jcu.exercise.civilian.indicators"
    sealed = seal(world, "cert-eu", "enisa", "--tlp", "RED", "--topic", topic)
    assert sealed.returncode == 0, sealed.stderr
    wrong = run(world, "enisa", "open", stdin=sealed.stdout)
    assert wrong.returncode == 1 and "wrong-topic" in one_line(wrong)
    right = run(world, "enisa", "open", "--topic", topic, stdin=sealed.stdout)
    assert right.returncode == 0, right.stderr


def test_bad_input_is_one_line(world: World) -> None:
    for org, args, stdin in (
        (
            "cert-eu",
            ("seal", "--to", "enisa", "--type", "Indicator", "--tlp", "AMBER"),
            b"{not json",
        ),
        ("cert-eu", ("seal", "--to", "nobody", "--type", "Indicator", "--tlp", "RED"), RECORD),
        ("enisa", ("open",), b"garbage"),
    ):
        out = run(world, org, *args, stdin=stdin)
        assert out.returncode == 1, args
        one_line(out)
    # A payload type the contract does not have is a usage error: one line, exit 2.
    out = run(world, "cert-eu", "seal", "--to", "enisa", "--type", "Nope", "--tlp", "AMBER")
    assert out.returncode == 2 and "--type" in one_line(out)


def test_missing_passphrase_says_which_variable(world: World) -> None:
    env = {k: v for k, v in world.env("cert-eu").items() if k != "JCU_KEY_PASSPHRASE"}
    out = subprocess.run([*JCU, "open"], input=b"x", env=env, capture_output=True, timeout=120)
    assert out.returncode == 1
    assert b"JCU_KEY_PASSPHRASE" in out.stderr and b"Traceback" not in out.stderr
