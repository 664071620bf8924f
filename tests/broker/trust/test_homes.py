"""The federation the tests and the demo run (`build_federation`): every private key file on
disk is in the home of the organisation (or the authority) that owns it, mode 0600, in
directories 0700; no home holds anyone else's key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.world import World

pytestmark = pytest.mark.kafka


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_private_key_file_is_in_its_owners_home(world: World) -> None:
    homes = {**world.federation.homes, "_authority": world.federation.authority_home}
    assert len(homes) == len(world.orgs) + 1
    found = 0
    for owner, home in homes.items():
        assert _mode(home) == 0o700
        assert _mode(home / "keys") == 0o700
        assert {p.name for p in (home / "keys").iterdir() if p.is_dir()} == {owner}
        assert _mode(home / "keys" / owner) == 0o700
        assert _mode(home / "keys" / "kdf.json") == 0o600
        for key in (home / "keys").rglob("*.pem"):
            assert key.parent == home / "keys" / owner, key
            assert _mode(key) == 0o600, key
            assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
            found += 1
    # and no private key anywhere else under the federation's root
    everywhere = {p for p in world.federation.root.rglob("*.pem") if b"PRIVATE" in p.read_bytes()}
    assert len(everywhere) == found
    assert found >= 2 * len(world.orgs) + 1  # a signing and a KEM key each, the authority's


def test_registry_state_is_private_too(world: World) -> None:
    for org in world.orgs:
        registry = world.home(org) / "registry"
        assert _mode(registry) == 0o700
        assert _mode(registry / "trusted.json") == 0o600
