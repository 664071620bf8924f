"""Setting up the federation with the `jcu` verbs, as separate organisations would: the
authority in its own home, each node in its own, requests carried as files, snapshots
imported. No Kafka: the authority stays offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.trust.request import fingerprint_of

JCU = [sys.executable, "-m", "broker.cli"]
WORDS = "an unguessable test passphrase, not a secret"


def run(home: Path, *args: str, passphrase: str = WORDS) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JCU_")}
    env.update(JCU_HOME=str(home), JCU_KEY_PASSPHRASE=passphrase, KAFKA_BOOTSTRAP="127.0.0.1:9")
    return subprocess.run([*JCU, *args], env=env, capture_output=True, text=True, timeout=120)


def ok(out: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert out.returncode == 0, out.stderr
    return out


def one_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 1, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fed")
    homes = {"authority": root / "authority", "isac-energy": root / "isac", "cert-eu": root / "ce"}
    ok(run(homes["authority"], "authority", "init"))
    pem = homes["authority"] / "authority.pem"
    for org in ("isac-energy", "cert-eu"):
        ok(run(homes[org], "init", "--participant", org, "--authority-key", str(pem)))
    return homes


def _request(home: Path, kind: str = "register") -> Path:
    return sorted((home / "requests").glob(f"*-{kind}-*.jcureq"))[-1]


def test_weak_passphrases_make_nothing(tmp_path: Path) -> None:
    line = one_error(run(tmp_path / "a", "authority", "init", passphrase="short"))
    assert "too short" in line and "short" not in line.split(":", 2)[-1].replace("too short", "")
    assert not (tmp_path / "a").exists()
    line = one_error(
        run(tmp_path / "n", "init", "--participant", "eda", passphrase="password123456")
    )
    assert "too weak" in line and not (tmp_path / "n").exists()


def test_a_node_holds_only_its_own_keys_and_is_one_organisation(fed: dict[str, Path]) -> None:
    for org in ("isac-energy", "cert-eu"):
        owners = {p.name for p in (fed[org] / "keys").iterdir() if p.is_dir()}
        assert owners == {org}
    assert {p.name for p in (fed["authority"] / "keys").iterdir() if p.is_dir()} == {"_authority"}
    line = one_error(run(fed["isac-energy"], "init", "--participant", "cert-eu"))
    assert "already is the node of isac-energy" in line
    line = one_error(run(fed["authority"], "init", "--participant", "cert-eu"))
    assert "registry authority's home" in line


def test_the_whole_life_of_a_registry(fed: dict[str, Path], tmp_path: Path) -> None:
    authority, isac, certeu = fed["authority"], fed["isac-energy"], fed["cert-eu"]
    requests = [str(_request(isac)), str(_request(certeu))]
    # approval needs the fingerprints the organisations read out over another channel
    refused = run(authority, "authority", "approve", *requests)
    assert refused.returncode == 1 and refused.stderr.count("fingerprint") >= 2
    no_snapshot = one_error(run(isac, "keys", "list"))
    assert "registry sync" in no_snapshot
    prints = []
    for req in requests:  # what `jcu init` printed on each node, read out to the authority
        prints += ["--fingerprint", fingerprint_of(Path(req).read_bytes())]
    approved = json.loads(
        ok(run(authority, "authority", "approve", *requests, *prints, "--json")).stdout
    )
    assert [a["kind"] for a in approved] == ["register", "register"]
    first = tmp_path / "epoch1.jcureg"
    ok(run(authority, "authority", "export", "--out", str(first)))
    for home in (isac, certeu):
        assert "epoch 1 accepted" in ok(run(home, "registry", "import", str(first))).stdout
    listed = json.loads(ok(run(isac, "keys", "list", "--json")).stdout)
    assert {e["participant"] for e in listed} == {"isac-energy", "cert-eu"}

    # cert-eu rotates: its node asks, signed by the old key and the new
    rotated = json.loads(ok(run(certeu, "keys", "rotate", "--json")).stdout)
    ok(run(authority, "authority", "approve", rotated["request"]))
    second = tmp_path / "epoch2.jcureg"
    ok(run(authority, "authority", "export", "--out", str(second)))
    ok(run(isac, "registry", "import", str(second)))
    keys = json.loads(ok(run(isac, "keys", "list", "cert-eu", "--json")).stdout)[0]["keys"]
    assert sorted(k["status"] for k in keys) == ["active", "active", "retired", "retired"]

    # the older snapshot again (as if replayed): refused, one line, nothing changes
    line = one_error(run(isac, "registry", "import", str(first)))
    assert "stale-registry" in line and "older than epoch 2" in line
    assert json.loads(ok(run(isac, "registry", "show", "--json")).stdout)["epoch"] == 2

    # cert-eu reports its keys compromised; the authority revokes them
    revoke = json.loads(
        ok(run(certeu, "keys", "revoke", "--reason", "compromised", "--json")).stdout
    )
    ok(run(authority, "authority", "approve", revoke["request"]))
    third = tmp_path / "epoch3.jcureg"
    ok(run(authority, "authority", "export", "--out", str(third)))
    ok(run(isac, "registry", "import", str(third)))
    keys = json.loads(ok(run(isac, "keys", "list", "cert-eu", "--json")).stdout)[0]["keys"]
    assert {k["revocation_reason"] for k in keys} == {"compromised"}

    # the authority rotates its own key; nodes follow the chain from the key they trust
    ok(run(authority, "authority", "rotate-own-key"))
    fourth = tmp_path / "epoch4.jcureg"
    ok(run(authority, "authority", "export", "--out", str(fourth)))
    shown_after = json.loads(ok(run(isac, "registry", "import", str(fourth), "--json")).stdout)
    assert shown_after == {"epoch": 4, "accepted": True}


def test_every_private_key_file_is_private_in_its_owners_home(fed: dict[str, Path]) -> None:
    for org, home in fed.items():
        owner = "_authority" if org == "authority" else org
        assert home.stat().st_mode & 0o777 == 0o700
        for path in (home / "keys").rglob("*"):
            if path.is_dir():
                assert path.stat().st_mode & 0o777 == 0o700, path
                assert path.name == owner, path
            elif path.suffix == ".pem":
                assert path.stat().st_mode & 0o777 == 0o600, path
                assert path.parent.name == owner, path
