"""`jcu assist` and `jcu capabilities` as operators run them, each organisation on its own node:
a case from request to closure, the crisis board, the audit story, and one-line refusals."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from broker.pep.control import publish_declaration, sign_declaration
from tests.cli import run
from tests.world import World

VERBS = ("request", "offers", "offer", "accept", "status", "close", "list", "show", "match")


@pytest.mark.parametrize("verb", VERBS)
def test_every_assist_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["assist", verb, "--help"], capsys)
    assert code == 0 and "Usage: jcu assist" in out and "--as" in out


@pytest.mark.parametrize("verb", ["publish", "list", "withdraw"])
def test_every_capabilities_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["capabilities", verb, "--help"], capsys)
    assert code == 0 and "Usage: jcu capabilities" in out


async def _jcu(world: World, org: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`jcu ARGS` run by `org` on its own node (`jcu audit` by an auditor with `org`'s home:
    only auditors read the audit topics)."""
    env = world.auditor_env(org) if args[0] == "audit" else world.env(org)
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "broker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 1, result.stdout
    lines = [x for x in result.stderr.splitlines() if x.startswith("jcu: error:")]
    assert len(lines) == 1 and words in lines[0], result.stderr


@pytest.mark.kafka
async def test_a_case_from_request_to_closure_on_the_command_line(
    world: World, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    caps = tmp_path / "caps.yaml"
    caps.write_text(
        f"""capabilities:
  - id: ir-{tag}
    kind: incident-response
    title: CERT-EU on-site team
    skills: [ransomware, windows]
    languages: [en, fr]
    capacity: 3
    deployment: on-site
    notice: 12h
    categories: [malicious-code]
    shareable: true
  - id: ti-{tag}
    kind: threat-intelligence
    title: Attribution desk
    notice: 2h
    categories: [malicious-code]
"""
    )
    published = await _jcu(world, "cert-eu", "capabilities", "publish", str(caps), "--json")
    assert published.returncode == 0, published.stderr
    shared, private = json.loads(published.stdout)
    assert "soc-fr" in shared["visible_to"] and "soc-fr" not in private["visible_to"]

    incident = f"INC-{tag}"
    decl = sign_declaration(
        world.ctx("eu-cyclone").envelope,
        "eu-cyclone",
        incident,
        ("FR", "BE"),
        True,
        timedelta(days=1),
    )
    await publish_declaration(world.kafka("eu-cyclone"), incident, decl)

    request = [
        "assist",
        "request",
        "--member-states",
        "FR",
        "--need",
        "incident-response:ransomware",
    ]
    request += ["--category", "malicious-code", "--language", "fr", "--max-notice", "24h"]
    request += [
        "--summary",
        "Hospitals encrypted",
        "--incident",
        incident,
        "--urgency",
        "immediate",
    ]
    refused = await _jcu(world, "soc-fr", *request[:3], "DE", *request[4:])
    _one_line_error(refused, "acts for FR")
    made = await _jcu(world, "soc-fr", *request, "--json")
    assert made.returncode == 0, made.stderr
    case = json.loads(made.stdout)["case"]
    short = case[:8]

    board = await _jcu(world, "soc-fr", "crisis", "list", "--json")
    (crisis,) = [c for c in json.loads(board.stdout) if c["incident"] == incident]
    assert [r["id"] for r in crisis["open_requests"]] == [case]
    assert crisis["open_requests"][0]["crisis"] is True

    # The requester, a member, ranks what it may see: the shareable entry only.
    matched = await _jcu(world, "soc-fr", "assist", "match", short, "--json")
    assert matched.returncode == 0, matched.stderr
    keys = [m["key"] for m in json.loads(matched.stdout)["n1"]]
    assert f"cert-eu/ir-{tag}" in keys and f"cert-eu/ti-{tag}" not in keys
    top = json.loads(matched.stdout)["n1"][0]
    assert top["key"] == f"cert-eu/ir-{tag}" and top["eligible"] and top["score"] == 1.0

    offered = await _jcu(
        world, "cert-eu", "assist", "offer", short, "--capability", f"ir-{tag}", "--json"
    )
    assert offered.returncode == 0, offered.stderr
    offer_id = json.loads(offered.stdout)["message_id"]
    assert json.loads(offered.stdout)["recipients"] == ["soc-fr"]

    offers = await _jcu(world, "soc-fr", "assist", "offers", short, "--json")
    (mine,) = json.loads(offers.stdout)
    assert (mine["offerer"], mine["kind"], mine["notice_hours"]) == (
        "cert-eu",
        "INCIDENT_RESPONSE",
        12,
    )

    _one_line_error(
        await _jcu(world, "cert-eu", "assist", "accept", short, offer_id[:8]), "only soc-fr"
    )
    accepted = await _jcu(world, "soc-fr", "assist", "accept", short, offer_id[:8])
    assert accepted.returncode == 0 and "ACCEPTED" in accepted.stdout, accepted.stderr
    deployed = await _jcu(
        world, "cert-eu", "assist", "status", short, "--phase", "deployed", "--note", "on site"
    )
    assert deployed.returncode == 0, deployed.stderr

    listed = await _jcu(world, "soc-fr", "assist", "list", "--json")
    (line,) = [c for c in json.loads(listed.stdout) if c["id"] == case]
    assert (line["state"], line["accepted"], line["role"]) == ("DEPLOYED", ["cert-eu"], "requester")
    table = await _jcu(world, "soc-fr", "assist", "list")
    assert f"{short} CRISIS" in table.stdout

    closed = await _jcu(
        world,
        "soc-fr",
        "assist",
        "close",
        short,
        "--outcome",
        "resolved",
        "--report",
        "Restored in 36 h",
    )
    assert closed.returncode == 0 and "CLOSED" in closed.stdout, closed.stderr
    late = await _jcu(world, "cert-eu", "assist", "status", short, "--note", "more")
    _one_line_error(late, "closed")

    shown = await _jcu(world, "cert-eu", "assist", "show", short, "--json")
    view = json.loads(shown.stdout)
    assert view["state"] == "CLOSED" and view["closure"]["report"] == "Restored in 36 h"

    story = await _jcu(world, "soc-fr", "audit", "explain", short)
    assert story.returncode == 0, story.stderr
    for words in (
        "request by soc-fr",
        "offer by cert-eu",
        "acceptance by soc-fr",
        "status update by cert-eu",
        "closure by soc-fr",
    ):
        assert words in story.stdout, words
    # cert-eu's two refused steps were refused on its own node: in its logs, sealed to
    # soc-fr's, told by cert-eu's node (or by an auditor holding cert-eu's audit keys).
    assert "REFUSED" not in story.stdout
    theirs = await _jcu(world, "cert-eu", "audit", "explain", short)
    assert theirs.returncode == 0, theirs.stderr
    for words in ("REFUSED (not-entitled)", "REFUSED (out-of-order)"):
        assert words in theirs.stdout, words


@pytest.mark.kafka
async def test_bad_input_is_one_line_and_a_non_zero_exit(world: World) -> None:
    no_need = await _jcu(
        world, "soc-fr", "assist", "request", "--member-states", "FR", "--summary", "x"
    )
    _one_line_error(no_need, "--need")
    bad_kind = await _jcu(
        world,
        "soc-fr",
        "assist",
        "request",
        "--member-states",
        "FR",
        "--need",
        "plumbing",
        "--summary",
        "x",
        "--category",
        "other",
    )
    _one_line_error(bad_kind, "not one of")
    unknown = await _jcu(world, "soc-fr", "assist", "show", "ffffffff")
    _one_line_error(unknown, "knows no assistance request")
    other = await _jcu(world, "soc-fr", "assist", "list", "--as", "cert-eu")
    assert other.returncode == 1 and "cert-eu" in other.stderr
    nothing = await _jcu(world, "cert-eu", "capabilities", "withdraw", "no-such-entry")
    _one_line_error(nothing, "no capability 'no-such-entry'")
