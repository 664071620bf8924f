"""Audit secrets: one per node, one key per enforcement point made from it, kept 0600 in a
0700 directory, never shown; a leaf's key opens that leaf and no other."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from broker.audit.keys import MASTER_FILE, AuditKeys, PointKey, parse_exported
from broker.errors import AuditError, ConfigError


def test_the_master_secret_is_made_once_private_and_kept(tmp_path: Path) -> None:
    directory = tmp_path / "home" / "audit"
    first = AuditKeys.open(directory)
    again = AuditKeys.open(directory)
    path = directory / MASTER_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert first.require("cert-eu/publish").export() == again.require("cert-eu/publish").export()
    assert AuditKeys.open(tmp_path / "none", create=False).point("cert-eu/publish") is None


def test_each_enforcement_point_has_its_own_key_and_only_its_owner_s(tmp_path: Path) -> None:
    keys = AuditKeys(bytes(range(32)), owner="cert-eu")
    publish, receive = keys.require("cert-eu/publish"), keys.require("cert-eu/receive")
    assert publish.content_hash(b"x") != receive.content_hash(b"x")
    assert keys.point("enisa/publish") is None  # another organisation's: not ours to derive
    # HKDF-SHA256 as documented, written out apart from the code
    secret = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"jcu-broker/audit/enforcement-point/v1\x00cert-eu/publish",
    ).derive(bytes(range(32)))
    content_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"jcu-broker/audit/content-hash/v1"
    ).derive(secret)
    expected = hmac.digest(content_key, hashlib.sha256(b"payload").digest(), "sha256")
    assert publish.content_hash(b"payload") == expected
    assert publish.content_hash(b"payload") != hashlib.sha256(b"payload").digest()


def test_a_leaf_key_is_the_documented_hmac_of_its_salt() -> None:
    key = PointKey("cert-eu/publish", bytes(32))
    root = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"jcu-broker/audit/leaf-key/v1"
    ).derive(bytes(32))
    salt = os.urandom(16)
    assert key.leaf_key(salt) == hmac.digest(root, salt, "sha256")  # HMAC-SHA256(root, salt)
    assert key.leaf_key(salt) != key.leaf_key(os.urandom(16))


def test_secrets_are_never_shown(tmp_path: Path) -> None:
    keys = AuditKeys(b"\x11" * 32, owner="cert-eu")
    key = keys.require("cert-eu/publish")
    for shown in (repr(key), str(key), repr(keys)):
        assert "11" * 8 not in shown and "ERER" not in shown
    with pytest.raises(AuditError) as err:
        AuditKeys(None).require("cert-eu/publish")
    assert "11" * 8 not in str(err.value)


def test_an_exported_key_reads_back_and_a_damaged_one_is_one_clear_error(tmp_path: Path) -> None:
    key = AuditKeys(bytes(range(32))).require("cert-eu/publish")
    path = tmp_path / "cert-eu.key"
    path.write_text("# for the inquiry\n" + key.export())
    (back,) = parse_exported(path)
    assert back.enforcement_point == "cert-eu/publish"
    assert back.content_hash(b"x") == key.content_hash(b"x")
    loaded = AuditKeys().load([tmp_path])
    assert loaded.point("cert-eu/publish") is not None
    path.write_text(key.export().replace("=", "!"))
    with pytest.raises(ConfigError, match=r"cert-eu\.key:1"):
        parse_exported(path)
    path.write_text("not a key line\n")
    with pytest.raises(ConfigError, match="not a line of `jcu audit keys export`"):
        parse_exported(path)


def test_a_damaged_master_secret_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / MASTER_FILE).write_bytes(b"short")
    with pytest.raises(AuditError, match=r"damaged .* restore it from backup"):
        AuditKeys.open(tmp_path)
