"""`jcu init`, `jcu keys`, `jcu seal` and `jcu open` as an operator runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

JCU = [sys.executable, "-m", "broker.cli"]
INDICATOR = {
    "id": "2f4c1e8a-52c5-4d4b-9b35-8d1f2f0f9a11",
    "observable_type": "domain-name",
    "value": "bad.example",
    "valid_from": "2026-11-27T10:00:00Z",
    "labels": ["phishing", "ünïcode ✓"],
}


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JCU_")}
    env.update(JCU_HOME=str(home), JCU_KEY_PASSPHRASE="cli test passphrase", **extra)
    return env


def run(env: dict[str, str], *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*JCU, *args], input=stdin, env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    h = tmp_path_factory.mktemp("jcu-home")
    first = run(_env(h), "init", "--no-kafka")
    assert first.returncode == 0, first.stderr
    assert b"created" in first.stdout
    yield h


def test_init_is_idempotent_and_speaks_json(home: Path) -> None:
    again = run(_env(home), "init", "--no-kafka", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)["keys"]
    assert report["authority_created"] is False
    assert set(report["participants"].values()) == {"unchanged"}
    assert "eda" in report["participants"]


def test_seal_pipe_open_round_trips(home: Path) -> None:
    env = _env(home)
    sealed = run(env, "seal", "--as", "cert-eu", "--to", "enisa,eda", "--type", "Indicator",
                 "--tlp", "AMBER", "--category", "fraud", stdin=json.dumps(INDICATOR).encode())
    assert sealed.returncode == 0, sealed.stderr
    assert sealed.stdout[:2] == b"\xc3\x01"
    for who in ("enisa", "eda"):  # X25519 and the ML-KEM hybrid
        opened = run(env, "open", "--as", who, stdin=sealed.stdout)
        assert opened.returncode == 0, opened.stderr
        record = json.loads(opened.stdout)
        assert record["value"] == "bad.example"
        assert record["labels"] == INDICATOR["labels"]
        assert b"from cert-eu" in opened.stderr
    as_json = json.loads(run(env, "open", "--as", "eda", "--json", stdin=sealed.stdout).stdout)
    assert as_json["verified_sender"] == "cert-eu"
    assert as_json["header"]["topic"] == "jcu.civilian.indicators"
    assert as_json["header"]["tlp"] == "AMBER"
    assert "labels" not in as_json["header"]  # only the recipients see them
    assert as_json["labels"]["tlp"] == "AMBER"
    assert as_json["labels"]["categories"] == ["fraud"]


def test_shell_pipeline(home: Path, tmp_path: Path) -> None:
    (tmp_path / "rec.json").write_text(json.dumps(INDICATOR))
    cmd = " ".join(JCU)
    out = subprocess.run(
        f"{cmd} seal --as cert-eu --to europol-ec3 --type Indicator --tlp GREEN "
        f"--in {tmp_path / 'rec.json'} | {cmd} open --as europol-ec3",
        shell=True, env=_env(home), capture_output=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["value"] == "bad.example"


def test_non_recipient_gets_one_clear_line(home: Path, tmp_path: Path) -> None:
    env = _env(home)
    sealed = run(env, "seal", "--as", "cert-eu", "--to", "enisa", "--type", "Indicator",
                 "--tlp", "AMBER", "--out", str(tmp_path / "env.bin"),
                 stdin=json.dumps(INDICATOR).encode())
    assert sealed.returncode == 0, sealed.stderr
    opened = run(env, "open", "--as", "eda", "--in", str(tmp_path / "env.bin"))
    assert opened.returncode == 1
    lines = opened.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "not-a-recipient" in lines[0] and "Traceback" not in lines[0]
    assert opened.stdout == b""


def test_topic_override_must_match_on_both_sides(home: Path) -> None:
    env = _env(home)
    sealed = run(env, "seal", "--as", "cert-eu", "--to", "enisa", "--type", "Indicator",
                 "--tlp", "AMBER", "--topic", "jcu.exercise.civilian.indicators",
                 stdin=json.dumps(INDICATOR).encode())
    wrong = run(env, "open", "--as", "enisa", stdin=sealed.stdout)
    assert wrong.returncode == 1 and b"wrong-topic" in wrong.stderr
    right = run(env, "open", "--as", "enisa", "--topic", "jcu.exercise.civilian.indicators",
                stdin=sealed.stdout)
    assert right.returncode == 0, right.stderr


def test_bad_input_is_one_line(home: Path) -> None:
    env = _env(home)
    for args, stdin in (
        (("seal", "--as", "cert-eu", "--to", "enisa", "--type", "Indicator", "--tlp", "AMBER"),
         b"{not json"),
        (("seal", "--as", "cert-eu", "--to", "enisa", "--type", "Nope", "--tlp", "AMBER"), b"{}"),
        (("seal", "--as", "nobody", "--to", "enisa", "--type", "Indicator", "--tlp", "AMBER"),
         json.dumps(INDICATOR).encode()),
        (("open", "--as", "enisa"), b"garbage"),
    ):
        out = run(env, *args, stdin=stdin)
        assert out.returncode == 1, args
        assert len(out.stderr.decode().strip().splitlines()) == 1, out.stderr
        assert b"Traceback" not in out.stderr


def test_missing_passphrase_says_which_variable(home: Path) -> None:
    env = _env(home)
    del env["JCU_KEY_PASSPHRASE"]
    out = run(env, "seal", "--as", "cert-eu", "--to", "enisa", "--type", "Indicator",
              "--tlp", "AMBER", stdin=json.dumps(INDICATOR).encode())
    assert out.returncode == 1
    assert b"JCU_KEY_PASSPHRASE" in out.stderr and b"Traceback" not in out.stderr


def test_keys_list_rotate_revoke(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert run(env, "init", "--no-kafka").returncode == 0
    listed = json.loads(run(env, "keys", "list", "--json").stdout)
    assert {e["participant"] for e in listed} >= {"cert-eu", "eda", "europol-ec3"}
    rotated = run(env, "keys", "rotate", "pesco", "--json")
    assert rotated.returncode == 0, rotated.stderr
    statuses = sorted(k["status"] for k in json.loads(rotated.stdout)["keys"])
    assert statuses == ["active", "active", "retired", "retired"]
    revoked = run(env, "keys", "revoke", "pesco", "--reason", "test")
    assert revoked.returncode == 0, revoked.stderr
    assert b"jcu keys rotate pesco" in revoked.stdout
    after = json.loads(run(env, "keys", "list", "pesco", "--json").stdout)[0]
    assert {k["status"] for k in after["keys"]} == {"revoked"}  # retired ones too
    assert after["serial"] == 3
    # a revoked sender can no longer seal
    sealed = run(env, "seal", "--as", "pesco", "--to", "eda", "--type", "Indicator",
                 "--tlp", "AMBER", stdin=json.dumps(INDICATOR).encode())
    assert sealed.returncode == 1 and b"rotate" in sealed.stderr
