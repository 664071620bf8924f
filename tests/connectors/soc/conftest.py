"""Fixtures of the connector format tests: the repository's Avro schemas and the shared samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.schemas import SchemaStore
from tests.samples import SAMPLES as SAMPLES

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def store() -> SchemaStore:
    return SchemaStore.load(REPO / "schemas")
