"""The `world` fixture lives in tests/conftest.py (shared with the connector tests);
`World` stays importable from here for the enforcement point tests."""

from __future__ import annotations

from tests.world import PASSPHRASE, World

__all__ = ["PASSPHRASE", "World"]
