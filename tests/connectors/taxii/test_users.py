"""TAXII passwords: salted scrypt hashes at rest, verification, reload on change."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from broker.errors import ConfigError
from connectors.taxii import ScryptCost, TaxiiUsers

PASSWORD = "correct horse battery staple"
FAST = ScryptCost(n=2**12)


def test_the_right_password_verifies_and_a_wrong_one_does_not(tmp_path: Path) -> None:
    users = TaxiiUsers(tmp_path / "taxii-users.json", cost=FAST)
    users.set_password("cert-eu", PASSWORD)
    assert users.verify("cert-eu", PASSWORD)
    assert users.verify("cert-eu", PASSWORD)  # second time from the in-process cache
    assert not users.verify("cert-eu", PASSWORD + "!")
    assert not users.verify("enisa", PASSWORD)


def test_no_plaintext_at_rest_and_the_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "taxii-users.json"
    users = TaxiiUsers(path, cost=FAST)
    users.set_password("cert-eu", PASSWORD)
    users.set_password("enisa", PASSWORD)
    raw = path.read_text()
    assert PASSWORD not in raw
    entries = json.loads(raw)["users"]
    assert entries["cert-eu"]["kdf"] == "scrypt"
    assert entries["cert-eu"]["salt"] != entries["enisa"]["salt"]
    assert entries["cert-eu"]["hash"] != entries["enisa"]["hash"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_changed_password_is_picked_up_by_a_running_verifier(tmp_path: Path) -> None:
    path = tmp_path / "taxii-users.json"
    server_side = TaxiiUsers(path, cost=FAST)
    TaxiiUsers(path, cost=FAST).set_password("cert-eu", PASSWORD)
    assert server_side.verify("cert-eu", PASSWORD)
    TaxiiUsers(path, cost=FAST).set_password("cert-eu", "a brand new passphrase")
    assert not server_side.verify("cert-eu", PASSWORD)
    assert server_side.verify("cert-eu", "a brand new passphrase")


def test_short_passwords_are_refused(tmp_path: Path) -> None:
    users = TaxiiUsers(tmp_path / "taxii-users.json", cost=FAST)
    with pytest.raises(ConfigError, match="at least 12"):
        users.set_password("cert-eu", "short")
    assert users.users() == []


def test_a_corrupt_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "taxii-users.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="TAXII users file"):
        TaxiiUsers(path).verify("cert-eu", PASSWORD)
