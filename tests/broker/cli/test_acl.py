"""`jcu acl plan | apply | check` against the session's secured broker, as the platform admin."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest

from broker.audit.topic import read_topic
from broker.kafka.acl import AclRule
from broker.kafka.acl_admin import _admin, _binding
from broker.kafka.connection import CONFIG_ENV, read_client_file
from broker.kafka.topics import AUDIT_CHECKPOINTS
from tests.cli import run
from tests.conftest import SessionKafka
from tests.world import World

pytestmark = pytest.mark.kafka

HOLE = AclRule("User:enisa", "topic", "prefixed", "jcu.defence.", "READ")
DROPPED = AclRule("User:eda", "topic", "prefixed", "jcu.defence.", "READ")


def _change(kafka: SessionKafka, add: list[AclRule], remove: list[AclRule]) -> None:
    """Make the cluster drift, as a hand-made change by someone with admin rights would."""
    admin = _admin(kafka.admin)
    if add:
        for future in admin.create_acls([_binding(r) for r in add]).values():
            future.result()
    if remove:
        for future in admin.delete_acls([_binding(r, as_filter=True) for r in remove]).values():
            future.result()


@pytest.fixture
def platform(
    world: World, kafka: SessionKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The platform admin's home: its own, trusting the authority's key; the admin's client
    file. The session's walls were put up from the same registry."""
    home = tmp_path / "platform"
    home.mkdir()
    monkeypatch.setenv("JCU_HOME", str(home))
    monkeypatch.setenv(CONFIG_ENV, str(kafka.admin_file))
    return world.federation.authority_home / "authority.pem"


def test_plan_apply_check(platform: Path, kafka: SessionKafka, capsys) -> None:
    code, out, err = run(["acl", "check", "--authority-key", str(platform)], capsys)
    assert code == 0, err
    assert "no drift" in out

    code, out, _ = run(["acl", "plan", "--json"], capsys)
    assert code == 0
    plan = json.loads(out)
    rules = {(r["principal"], r["operation"], r["name"]) for r in plan["rules"]}
    assert ("User:enisa", "READ", "jcu.civilian.") in rules
    assert ("User:eu-cyclone", "WRITE", "jcu.control") in rules
    assert {"enisa", "registry-authority", "jcu-auditor"} <= set(plan["users"])

    _change(kafka, add=[HOLE], remove=[DROPPED])
    try:
        code, out, _ = run(["acl", "check"], capsys)
        assert code == 1
        assert f"not implied: {HOLE}" in out.splitlines()
        assert f"missing: {DROPPED}" in out.splitlines()

        code, out, err = run(["acl", "apply", "--json"], capsys)
        assert code == 0, err
        done = json.loads(out)
        assert [r["name"] for r in done["added"]] == [DROPPED.name]
        assert [(r["principal"], r["name"]) for r in done["removed"]] == [
            (HOLE.principal, HOLE.name)
        ]
    finally:
        code, out, _ = run(["acl", "apply", "--json"], capsys)  # idempotent, and a repair
    assert code == 0
    again = json.loads(out)
    assert again["added"] == again["removed"] == again["users_created"] == []
    code, out, _ = run(["acl", "check"], capsys)
    assert code == 0


def test_new_users_get_a_private_client_file_and_can_log_in(
    platform: Path, kafka: SessionKafka, tmp_path: Path, capsys
) -> None:
    roles = tmp_path / "platform.toml"
    roles.write_text('auditors = ["jcu-auditor", "audit-team-2"]\n')
    code, _, err = run(
        ["acl", "apply", "--authority-key", str(platform), "--roles", str(roles)], capsys
    )
    assert code == 1
    assert "--credentials-dir" in err and "audit-team-2" in err
    outbox = tmp_path / "outbox"
    try:
        code, out, err = run(
            ["acl", "apply", "--roles", str(roles), "--credentials-dir", str(outbox), "--json"],
            capsys,
        )
        assert code == 0, err
        done = json.loads(out)
        assert done["users_created"] == ["audit-team-2"]
        client = Path(done["credential_files"]["audit-team-2"])
        assert stat.S_IMODE(client.stat().st_mode) == 0o600
        assert "password" in client.read_text() and "password" not in out + err
        newcomer = read_client_file(client)
        assert newcomer.principal == "User:audit-team-2"
        asyncio.run(read_topic(newcomer, AUDIT_CHECKPOINTS))  # an auditor: may read it
    finally:
        # Back to the session's roles: the newcomer's bindings are on jcu topics, in scope.
        code, out, _ = run(["acl", "apply", "--json"], capsys)
    assert code == 0
    assert {r["principal"] for r in json.loads(out)["removed"]} == {"User:audit-team-2"}
