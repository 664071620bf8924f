"""Connector format test fixtures: the Avro schemas (samples: tests/samples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.schemas import SchemaStore

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def store() -> SchemaStore:
    return SchemaStore.load(REPO / "schemas")
