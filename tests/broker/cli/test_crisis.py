"""`jcu crisis` on the federation: Member States checked against the EU-27, an end of what is
not in force refused, every refusal and every act in eu-cyclone's control audit log with its
real reason; `jcu policy explain` reads the live crisis board."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.broker.pep.kafka_io import jcu
from tests.world import World

pytestmark = pytest.mark.kafka


def _incident() -> str:
    return f"INC-{uuid.uuid4().hex[:8]}"


async def _control_log(world: World, incident: str) -> list[dict[str, Any]]:
    """What eu-cyclone's control enforcement point recorded about `incident` (read by it)."""
    out = await jcu(
        world,
        "audit",
        "query",
        "--as",
        "eu-cyclone",
        "--ep",
        "eu-cyclone/control",
        "--message",
        f"crisis:{incident}",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def _one_line(out: Any) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    return str(lines[0])


async def test_member_states_are_checked_against_the_eu_27_and_refusals_say_why(
    world: World,
) -> None:
    incident = _incident()
    declare = ("crisis", "declare", "--as", "eu-cyclone", "--incident", incident)
    not_members = await jcu(world, *declare, "--member-states", "FR,XX,US")
    assert "US, XX are not EU Member States" in _one_line(not_members)
    greek = await jcu(world, *declare, "--member-states", "EL,FR")
    assert "Greece is GR" in _one_line(greek)
    alone = await jcu(world, *declare, "--member-states", "FR")
    assert "two or more Member States" in _one_line(alone) and "got 1 (FR)" in alone.stderr
    stranger = await jcu(world, "crisis", "declare", "--as", "enisa", "--incident", incident,
                         "--member-states", "FR,DE")  # fmt: skip
    assert "enisa may not declare or end a crisis" in _one_line(stranger)

    logged = await _control_log(world, incident)
    assert [(r["decision"], r["rejection_reason"]) for r in logged] == [
        ("reject", "not-a-member-state"),
        ("reject", "not-a-member-state"),
        ("reject", "too-few-member-states"),
    ]
    assert "US, XX are not EU Member States" in logged[0]["reasons"][0]
    # enisa's refusal is in enisa's own control log, which eu-cyclone cannot read.
    theirs = await jcu(world, "audit", "query", "--as", "enisa", "--ep", "enisa/control",
                       "--message", f"crisis:{incident}", "--json")  # fmt: skip
    (refused,) = json.loads(theirs.stdout)
    assert refused["rejection_reason"] == "not-a-crisis-authority"


async def test_declare_and_end_are_logged_and_an_end_of_what_is_not_in_force_is_refused(
    world: World,
) -> None:
    incident = _incident()
    never = await jcu(world, "crisis", "end", "--as", "eu-cyclone", "--incident", incident)
    assert "no crisis was ever declared for " + incident in _one_line(never)

    declared = await jcu(world, "crisis", "declare", "--as", "eu-cyclone", "--incident", incident,
                         "--member-states", "de,FR,be", "--days", "3", "--json")  # fmt: skip
    assert declared.returncode == 0, declared.stderr
    declaration = json.loads(declared.stdout)
    assert declaration["member_states"] == ["BE", "DE", "FR"] and declaration["active"]
    assert declaration["incident"] == incident and declaration["declared_by"] == "eu-cyclone"
    # An end names no Member States: it ends the declaration in force, and says so in JSON.
    ended = await jcu(world, "crisis", "end", "--as", "eu-cyclone", "--incident", incident,
                      "--json")  # fmt: skip
    assert ended.returncode == 0, ended.stderr
    end = json.loads(ended.stdout)
    assert not end["active"] and end["member_states"] == ["BE", "DE", "FR"]
    again = await jcu(world, "crisis", "end", "--as", "eu-cyclone", "--incident", incident)
    assert "already ended by eu-cyclone" in _one_line(again)

    logged = await _control_log(world, incident)
    assert [(r["decision"], r["rejection_reason"], r["details"].get("act")) for r in logged] == [
        ("reject", "no-such-crisis", "end"),
        ("allow", None, "declare"),
        ("allow", None, "end"),
        ("reject", "crisis-not-in-force", "end"),
    ]
    declaration = logged[1]
    assert declaration["action"] == "crisis" and declaration["organisation"] == "eu-cyclone"
    assert declaration["details"]["member_states"] == "BE,DE,FR"
    assert declaration["details"]["expires"] and declaration["rule_ids"] == ["crisis-authority"]
    assert logged[2]["details"]["member_states"] == "BE,DE,FR"  # the end names what it ends


async def test_policy_explain_uses_the_live_crisis_board_by_default(world: World) -> None:
    incident = _incident()
    explain = (
        "policy", "explain", "--from", "cert-eu", "--type", "Indicator", "--tlp", "AMBER",
        "--category", "fraud", "--incident", incident, "--member-states", "FR,DE", "--json",
    )  # fmt: skip

    async def eeas(*extra: str) -> str:
        """Whether eeas-intcen would get it, explained on enisa's node."""
        out = await jcu(world, *explain, *extra)
        assert out.returncode == 0, out.stderr
        return str({r["org"]: r["decision"] for r in json.loads(out.stdout)}["eeas-intcen"])

    assert await eeas() == "deny"  # no crisis on the board yet
    declared = await jcu(world, "crisis", "declare", "--as", "eu-cyclone", "--incident",
                         incident, "--member-states", "FR,DE")  # fmt: skip
    assert declared.returncode == 0, declared.stderr
    assert await eeas() == "allow"  # what a publish would do now
    assert await eeas("--no-crisis") == "deny"  # what if it were not
    ended = await jcu(world, "crisis", "end", "--as", "eu-cyclone", "--incident", incident)
    assert ended.returncode == 0, ended.stderr
    assert await eeas() == "deny"
    assert await eeas("--crisis") == "allow"
