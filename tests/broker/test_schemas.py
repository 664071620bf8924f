"""The schema store: loading, fingerprints, single-object encoding, evolution."""

from __future__ import annotations

import copy
import io
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import fastavro.schema
import pytest
from fastavro._schema_common import rabin_fingerprint
from hypothesis import given
from hypothesis import strategies as st

from broker.assist.steps import Contact, Need, Request
from broker.errors import ConfigError, MalformedRecord, UnknownSchema
from broker.schemas import SchemaStore, crc_64_avro, default_store
from tests.broker._pki import REPO, load_store

PAYLOADS = (
    "Indicator",
    "IncidentReport",
    "SituationReport",
    "AssistanceRequest",
    "AssistanceOffer",
    "AssistanceAcceptance",
    "AssistanceStatus",
    "AssistanceClosure",
    "CapabilityEntry",
    "Receipt",
)


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return load_store()


def _indicator() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "observable_type": "ipv4-addr",
        "value": "198.51.100.7",
        "valid_from": datetime(2026, 11, 1, tzinfo=UTC),
        "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "execution"}],
        "labels": ["c2"],
    }


def test_every_required_type_is_in_namespace_eu_jcu_v1(store: SchemaStore) -> None:
    for name in (*PAYLOADS, "Envelope", "ParticipantRecord", "Labels"):
        assert store.full_name(name) == f"eu.jcu.v1.{name}"
        assert store.schema(f"eu.jcu.v1.{name}") == store.schema(name)


def test_named_types_resolve_across_files(store: SchemaStore) -> None:
    # Contact is defined in Contact.avsc and used by IncidentReport.avsc.
    schema = store.schema("IncidentReport")
    reporter = next(f for f in schema["fields"] if f["name"] == "reporter")
    assert reporter["type"][1]["name"] == "Contact"
    assert {f["name"] for f in reporter["type"][1]["fields"]} >= {"name", "email"}


def test_fingerprint_is_crc64_avro_of_the_canonical_form_per_the_avro_library(
    store: SchemaStore,
) -> None:
    for name in store.names():
        canonical = fastavro.schema.to_parsing_canonical_form(store.schema(name))
        # The avro library's own Rabin fingerprint over the spec's canonical form.
        assert avro.schema.parse(canonical).fingerprint("CRC-64-AVRO") == store.fingerprint(name)


@given(st.binary(max_size=2048))
def test_the_stores_crc_64_avro_is_fastavros(data: bytes) -> None:
    """The store's fingerprint function (table made once) against fastavro's own."""
    assert crc_64_avro(data) == bytes.fromhex(rabin_fingerprint(data))


def test_crc_64_avro_of_nothing_is_the_empty_value() -> None:
    assert crc_64_avro(b"") == (0xC15D213AA4D7A795).to_bytes(8, "little")


def test_encode_is_single_object_encoding(store: SchemaStore) -> None:
    data = store.encode("Indicator", _indicator())
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == store.fingerprint("Indicator")


def test_official_avro_library_decodes_the_payload(store: SchemaStore) -> None:
    record = _indicator()
    data = store.encode("Indicator", record)
    writer = avro.schema.parse(json.dumps(store.schema("Indicator")))
    canonical_form = fastavro.schema.to_parsing_canonical_form(store.schema("Indicator"))
    canonical = avro.schema.parse(canonical_form)
    assert data[2:10] == canonical.fingerprint()  # the header names the schema
    decoded: Any = avro.io.DatumReader(writer).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    assert decoded["id"] == record["id"]
    assert decoded["value"] == "198.51.100.7"
    assert decoded["kill_chain_phases"][0]["phase_name"] == "execution"
    assert decoded["valid_from"] == record["valid_from"]


def test_decode_round_trip_and_expected_type(store: SchemaStore) -> None:
    data = store.encode("Indicator", _indicator())
    name, rec = store.decode(data, expected="Indicator")
    assert name == "eu.jcu.v1.Indicator"
    assert rec["value"] == "198.51.100.7"
    with pytest.raises(UnknownSchema):
        store.decode(data, expected="IncidentReport")


def test_decode_rejects_unknown_fingerprint_and_garbage(store: SchemaStore) -> None:
    data = store.encode("Indicator", _indicator())
    with pytest.raises(UnknownSchema):
        store.decode(data[:2] + b"\x00" * 8 + data[10:])
    with pytest.raises(MalformedRecord):
        store.decode(b"\x00\x01" + data[2:])
    with pytest.raises(MalformedRecord):
        store.decode(data[:12])
    with pytest.raises(MalformedRecord):
        store.decode(data + b"\x00")


def test_encode_rejects_a_record_that_does_not_fit(store: SchemaStore) -> None:
    with pytest.raises(MalformedRecord):
        store.encode("Indicator", {"id": "x"})
    with pytest.raises(MalformedRecord):
        store.encode("Indicator", {**_indicator(), "no_such_field": 1})
    with pytest.raises(UnknownSchema):
        store.encode("NoSuchType", {})


def test_personal_data_fields_are_marked_in_the_schemas(store: SchemaStore) -> None:
    assert store.personal_data_fields("Indicator") == ()
    assert set(store.personal_data_fields("IncidentReport")) == {"reporter", "affected_persons"}
    assert store.personal_data_fields("AssistanceRequest") == ("contact",)


def _evolved_copy(src: Path, dst: Path) -> None:
    """schemas/ with Indicator gaining a field with a default."""
    dst.mkdir()
    for f in src.glob("*.avsc"):
        raw = json.loads(f.read_text())
        if raw["name"] == "Indicator":
            raw["fields"].append({"name": "severity", "type": "string", "default": "unknown"})
        (dst / f.name).write_text(json.dumps(raw))


def test_schema_evolution_old_and_new_readers_read_each_other(tmp_path: Path) -> None:
    old = SchemaStore.load(REPO / "schemas")
    _evolved_copy(REPO / "schemas", tmp_path / "new")
    new = SchemaStore.load(tmp_path / "new")
    assert old.fingerprint("Indicator") != new.fingerprint("Indicator")

    # each side learns the other's writer schema (as from a schema registry)
    old.add_writer_schema(new.schema("Indicator"))
    new.add_writer_schema(old.schema("Indicator"))

    old_data = old.encode("Indicator", _indicator())
    _, read_by_new = new.decode(old_data)
    assert read_by_new["severity"] == "unknown"  # the default fills the new field
    assert read_by_new["value"] == "198.51.100.7"

    new_data = new.encode("Indicator", {**_indicator(), "severity": "high"})
    _, read_by_old = old.decode(new_data)
    assert "severity" not in read_by_old  # the old reader skips the field it does not know
    assert read_by_old["value"] == "198.51.100.7"


def test_unknown_writer_version_is_unknown_schema(tmp_path: Path) -> None:
    old = SchemaStore.load(REPO / "schemas")
    _evolved_copy(REPO / "schemas", tmp_path / "new")
    new = SchemaStore.load(tmp_path / "new")
    with pytest.raises(UnknownSchema):
        old.decode(new.encode("Indicator", _indicator()))


def test_load_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        SchemaStore.load(tmp_path)
    (tmp_path / "Bad.avsc").write_text("{not json")
    with pytest.raises(ConfigError):
        SchemaStore.load(tmp_path)
    (tmp_path / "Bad.avsc").write_text(
        json.dumps(
            {"type": "record", "name": "Bad", "fields": [{"name": "x", "type": "eu.jcu.v1.Nope"}]}
        )
    )
    with pytest.raises(ConfigError):
        SchemaStore.load(tmp_path)


def test_default_store_follows_jcu_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "s"
    d.mkdir()
    labels = json.loads((REPO / "schemas" / "Labels.avsc").read_text())
    (d / "Labels.avsc").write_text(json.dumps(copy.deepcopy(labels)))
    monkeypatch.setenv("JCU_SCHEMAS", str(d))
    assert default_store().names() == ("Labels",)
    assert default_store() is default_store()


def _with_legacy(dst: Path, legacy: dict[str, Any]) -> SchemaStore:
    """schemas/ copied to `dst`, plus one legacy schema."""
    dst.mkdir()
    for f in (REPO / "schemas").glob("*.avsc"):
        (dst / f.name).write_text(f.read_text())
    (dst / "legacy").mkdir()
    (dst / "legacy" / "Old.avsc").write_text(json.dumps(legacy))
    return SchemaStore.load(dst)


#: An Indicator of another era, whose fields the current one cannot resolve.
OLD_INDICATOR = {
    "type": "record",
    "name": "Indicator",
    "namespace": "eu.jcu.v1",
    "fields": [{"name": "value", "type": "string"}, {"name": "old_only", "type": "int"}],
}


def _written_with(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    canonical = fastavro.schema.to_parsing_canonical_form(schema)
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")))
    fastavro.schemaless_writer(buf, fastavro.parse_schema(copy.deepcopy(schema)), record)
    return buf.getvalue()


def test_a_legacy_schema_decodes_as_written_not_resolved_to_the_current(tmp_path: Path) -> None:
    store = _with_legacy(tmp_path / "s", OLD_INDICATOR)
    data = _written_with(OLD_INDICATOR, {"value": "198.51.100.7", "old_only": 3})
    assert store.decode(data, expected="Indicator") == (
        "eu.jcu.v1.Indicator",
        {"value": "198.51.100.7", "old_only": 3},
    )
    # The current Indicator stays the one used to encode and to resolve others.
    assert store.schema("Indicator") == load_store().schema("Indicator")
    assert store.decode(store.encode("Indicator", _indicator()))[1]["value"] == "198.51.100.7"
    # The same schema as an ordinary writer schema is resolved, and cannot be.
    plain = load_store()
    plain.add_writer_schema(OLD_INDICATOR)
    with pytest.raises(MalformedRecord):
        plain.decode(data)


def test_a_legacy_schema_must_stand_alone(tmp_path: Path) -> None:
    leaning = {**OLD_INDICATOR, "fields": [{"name": "labels", "type": "eu.jcu.v1.Labels"}]}
    with pytest.raises(ConfigError, match="stand alone"):
        _with_legacy(tmp_path / "s", leaning)


def test_the_repository_keeps_envelope_version_1_as_a_legacy_schema() -> None:
    """Envelopes of format version 1 carry this fingerprint: it must never change."""
    path = REPO / "schemas" / "legacy" / "Envelope.v1.avsc"
    canonical = fastavro.schema.to_parsing_canonical_form(json.loads(path.read_text()))
    assert fastavro.schema.fingerprint(canonical, "CRC-64-AVRO") == "52a5b7eba163aefb"


def test_a_request_written_with_the_first_assistance_request_still_decodes() -> None:
    """schemas/previous/AssistanceRequest.v1.avsc (frozen): bytes written with it resolve
    into the current AssistanceRequest; the new fields take their defaults."""
    path = REPO / "schemas" / "previous" / "AssistanceRequest.v1.avsc"
    old = json.loads(path.read_text())
    canonical = fastavro.schema.to_parsing_canonical_form(old)
    assert fastavro.schema.fingerprint(canonical, "CRC-64-AVRO") == "a615d217049c4b8f"
    record = {
        "id": str(uuid.uuid4()),
        "requested": datetime(2026, 11, 1, tzinfo=UTC),
        "requester": "soc-fr",
        "assistance_type": "FORENSIC",
        "urgency": "PRIORITY",
        "description": "Need forensics",
        "member_state": "FR",
        "contact": {"name": "Duty officer"},
    }
    name, got = load_store().decode(_written_with(old, record), expected="AssistanceRequest")
    assert name == "eu.jcu.v1.AssistanceRequest"
    assert got["member_state"] == "FR" and got["contact"]["name"] == "Duty officer"
    assert (got["member_states"], got["needs"], got["crisis"]) == ([], [], False)
    assert Request.from_avro(got).member_states == ("FR",)  # read as on whose behalf


def test_a_new_request_reads_with_the_first_version_as_reader(tmp_path: Path) -> None:
    """An old node that learns the new writer schema reads a new request: the fields it does
    not know are skipped (its contact must be present: it was required then)."""
    old = SchemaStore.load(REPO / "schemas")  # current
    reader_dir = tmp_path / "old"
    reader_dir.mkdir()
    for f in (REPO / "schemas").glob("*.avsc"):
        (reader_dir / f.name).write_text(f.read_text())
    (reader_dir / "AssistanceRequest.avsc").write_text(
        (REPO / "schemas" / "previous" / "AssistanceRequest.v1.avsc").read_text()
    )
    first = SchemaStore.load(reader_dir)
    first.add_writer_schema(old.schema("AssistanceRequest"))
    new = Request(
        str(uuid.uuid4()),
        "soc-fr",
        datetime(2026, 12, 1, tzinfo=UTC),
        ("FR", "BE"),
        (Need("n1", "FORENSICS"),),
        "IMMEDIATE",
        "Ransomware",
        contact=Contact("Duty officer"),
    )
    _, got = first.decode(old.encode("AssistanceRequest", new.to_avro()))
    assert got["urgency"] == "IMMEDIATE" and "needs" not in got


def test_workflow_schemas_name_their_thread_field() -> None:
    store = load_store()
    for name, field in (
        ("AssistanceRequest", "id"),
        ("AssistanceOffer", "request_id"),
        ("AssistanceAcceptance", "request_id"),
        ("AssistanceStatus", "request_id"),
        ("AssistanceClosure", "request_id"),
    ):
        flow = store.workflow(name)
        assert flow is not None and (flow.name, flow.thread_field) == ("assistance", field)
    assert store.workflow("Indicator") is None and store.workflow("CapabilityEntry") is None
    assert store.personal_data_fields("AssistanceOffer") == ("contact",)


def test_a_workflow_without_its_thread_field_does_not_load(tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    (d / "Step.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "Step",
                "namespace": "eu.jcu.v1",
                "jcu.workflow": "x",
                "jcu.thread": "nope",
                "fields": [{"name": "id", "type": "string"}],
            }
        )
    )
    with pytest.raises(ConfigError, match=r"jcu\.thread"):
        SchemaStore.load(d).workflow("Step")
