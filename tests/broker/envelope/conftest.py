"""A PKI shared by the envelope tests (read-only use; tests that change keys build their own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.broker._pki import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def fresh_pki(tmp_path: Path) -> Pki:
    """A PKI of its own, for tests that rotate or revoke keys."""
    return make_pki(tmp_path)
