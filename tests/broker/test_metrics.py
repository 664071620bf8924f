"""The audit leaf encoder's path is exported: a schema edit that drops it to fastavro shows."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import generate_latest

from broker.audit import AuditRecord, leaf_encoder
from broker.metrics import Metrics, PlatformMetrics
from broker.schemas import SchemaStore, default_store
from tests.samples import REPO


def _record() -> AuditRecord:
    return AuditRecord(
        action="publish",
        organisation="enisa",
        message_id="msg-1",
        decision="allow",
        decision_id="00000000-0000-4000-8000-000000000001",
        time=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        content_hash=bytes(32),
        labels={"tlp": "GREEN", "categories": ["fraud"], "personal_data": False},
        rule_ids=("tlp-green-community",),
        legal_basis=(),
        obligations=(),
        redacted_fields=(),
        reasons=("member of the community",),
        policy_bundle_hash="ab" * 32,
    )


def _scrape(metrics: Metrics | PlatformMetrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in text.splitlines())
        if name.startswith("jcu_audit_encoder")
    }


def test_the_shipped_schemas_keep_the_fast_path() -> None:
    metrics = Metrics()
    encoder = leaf_encoder(default_store())
    metrics.watch_audit_encoder(encoder)
    before = encoder.fallbacks
    encoder.encode(_record())
    assert _scrape(metrics) == {
        "jcu_audit_encoder_fast": 1.0,
        "jcu_audit_encoder_fallbacks_total": float(before),
    }


def test_a_schema_edit_that_drops_to_fastavro_is_visible(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(REPO / "schemas", schemas)
    path = schemas / "AuditRecord.avsc"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["fields"].append({"name": "note", "type": "string", "default": ""})
    path.write_text(json.dumps(schema), encoding="utf-8")
    encoder = leaf_encoder(SchemaStore.load(schemas))
    metrics = PlatformMetrics()
    metrics.watch_audit_encoder(encoder)
    assert _scrape(metrics) == {
        "jcu_audit_encoder_fast": 0.0,
        "jcu_audit_encoder_fallbacks_total": 0.0,
    }
    encoder.encode(_record())
    encoder.encode(_record())
    assert _scrape(metrics)["jcu_audit_encoder_fallbacks_total"] == 2.0
