"""A node's home is one organisation's: it acts as no other, and trusts one authority key."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.errors import ConfigError, KeystoreError, NotThisNode
from broker.trust.node import NodeHome


def _pem() -> bytes:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def test_a_node_acts_only_as_itself(tmp_path: Path) -> None:
    node = NodeHome.create(tmp_path / "h", "isac-energy")
    assert node.acting_as(None) == "isac-energy"
    assert node.acting_as("isac-energy") == "isac-energy"
    with pytest.raises(NotThisNode, match="holds no key of cert-eu"):
        node.acting_as("cert-eu")
    assert NodeHome.open(tmp_path / "h").participant == "isac-energy"
    assert (tmp_path / "h").stat().st_mode & 0o777 == 0o700


def test_a_home_is_made_once_and_for_one_organisation(tmp_path: Path) -> None:
    NodeHome.create(tmp_path / "h", "isac-energy")
    with pytest.raises(ConfigError, match="already is the node of isac-energy"):
        NodeHome.create(tmp_path / "h", "cert-eu")
    (tmp_path / "k" / "keys" / "cert-eu").mkdir(parents=True)
    with pytest.raises(ConfigError, match="already holds keys"):
        NodeHome.create(tmp_path / "k", "isac-energy")


def test_opening_something_that_is_not_a_node_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="jcu init --participant"):
        NodeHome.open(tmp_path)


def test_replacing_the_trusted_authority_key_needs_replace(tmp_path: Path) -> None:
    node = NodeHome.create(tmp_path / "h", "eda")
    first, second = _pem(), _pem()
    kid = node.install_anchor(first)
    assert node.install_anchor(first) == kid  # the same again: fine
    with pytest.raises(ConfigError, match="--replace"):
        node.install_anchor(second)
    assert node.install_anchor(second, replace=True) != kid
    with pytest.raises(KeystoreError, match="is not a PEM public key"):
        node.install_anchor(b"not a key", replace=True)
