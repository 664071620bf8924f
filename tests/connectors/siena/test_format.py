"""SIENA-style case message files: strict reading, digest-checked attachments, exact round trip."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.errors import AttachmentDigestMismatch, InputFormatError
from broker.schemas import SchemaStore
from connectors.siena import (
    FORMAT_ID,
    parse_case_message,
    read_case_message,
    write_case_message,
)

PDF = b"%PDF-1.7 evidence"


def sample(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": FORMAT_ID,
        "id": "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c",
        "case_reference": "EC3-2026-0042",
        "created": "2026-11-27T21:15:00.123Z",
        "sender": "europol-ec3",
        "recipients": ["cert-eu", "enisa"],
        "subject": "Ransomware affiliate infrastructure",
        "body": "Subject John Doe operates the panel at 192.0.2.44.",
        "persons": [
            {"name": "John Doe", "organisation": None, "email": "jd@example.org", "phone": None}
        ],
        "handling_codes": ["H2", "H0"],
        "handling_restrictions": None,
        "evaluation": {"source_reliability": "B", "information_accuracy": 2},
        "tlp": "AMBER+STRICT",
        "attachments": [
            {
                "name": "panel.pdf",
                "media_type": "application/pdf",
                "sha256": hashlib.sha256(PDF).hexdigest(),
                "data": base64.b64encode(PDF).decode(),
            }
        ],
    }
    doc.update(changes)
    return doc


def test_reads_record_and_labels(store: SchemaStore) -> None:
    case = parse_case_message(json.dumps(sample()))
    assert case.tlp == "AMBER+STRICT"
    assert case.handling_codes == ("H0", "H2")
    assert case.recipients == ("cert-eu", "enisa")
    assert case.personal_data is True
    assert case.record["attachments"][0]["data"] == PDF
    assert case.record["created"] == datetime(2026, 11, 27, 21, 15, 0, 123000, tzinfo=UTC)
    _, decoded = store.decode(store.encode("CaseMessage", case.record))
    assert decoded["attachments"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert store.personal_data_fields("CaseMessage") == ("body", "persons", "attachments")


def test_default_tlp_is_amber_and_missing_id_is_derived_stably() -> None:
    doc = sample()
    del doc["tlp"], doc["id"]
    one, two = parse_case_message(json.dumps(doc)), parse_case_message(json.dumps(doc))
    assert one.tlp == "AMBER"
    assert one.record["id"] == two.record["id"]


def test_altered_attachment_is_refused_with_its_own_error() -> None:
    doc = sample()
    doc["attachments"][0]["data"] = base64.b64encode(PDF + b"!").decode()
    with pytest.raises(AttachmentDigestMismatch, match=r"attachments\[0\] \('panel.pdf'\)"):
        parse_case_message(json.dumps(doc))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"handling_codes": []}, "handling_codes"),
        ({"handling_codes": ["H4"]}, "handling_codes"),
        ({"handling_codes": ["H3"]}, "H3 needs the provider's restrictions"),
        (
            {"evaluation": {"source_reliability": "D", "information_accuracy": 2}},
            "source_reliability",
        ),
        (
            {"evaluation": {"source_reliability": "A", "information_accuracy": 5}},
            "information_accuracy",
        ),
        (
            {"evaluation": {"source_reliability": "A", "information_accuracy": True}},
            "information_accuracy",
        ),
        ({"recipients": []}, "recipients"),
        ({"created": "2026-11-27T21:15:00"}, "created"),
        ({"tlp": "purple"}, "tlp"),
        ({"priority": "urgent"}, "unknown key"),
        ({"format": "siena/9"}, "format"),
        ({"persons": [{"name": ""}]}, r"persons\[0\].name"),
        ({"id": "nope"}, "uuid"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InputFormatError, match=message):
        parse_case_message(json.dumps(sample(**changes)))


def test_h3_with_restrictions_is_accepted() -> None:
    case = parse_case_message(
        json.dumps(
            sample(
                handling_codes=["H3"],
                handling_restrictions="Not to be shared with private parties.",
            )
        )
    )
    assert case.handling_codes == ("H3",)


def test_write_then_read_gives_the_same_record_and_file(tmp_path: Path) -> None:
    case = parse_case_message(json.dumps(sample()))
    path = write_case_message(tmp_path, case.record, tlp=case.tlp)
    assert path.name == "EC3-2026-0042-3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c.json"
    again = read_case_message(path)
    assert again == case
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # atomic: no temp left


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "msg.json"
    path.write_text(json.dumps(sample())[:200])
    with pytest.raises(InputFormatError, match="truncated"):
        read_case_message(path)


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
NAME = TEXT.filter(lambda s: bool(s.strip()))
CONTACTS = st.fixed_dictionaries(
    {
        "name": NAME,
        "organisation": st.one_of(st.none(), TEXT),
        "email": st.one_of(st.none(), TEXT),
        "phone": st.one_of(st.none(), TEXT),
    }
)
ATTACHMENTS = st.builds(
    lambda name, media, data: {
        "name": name,
        "media_type": media,
        "sha256": hashlib.sha256(data).hexdigest(),
        "data": data,
    },
    NAME,
    st.sampled_from(["application/pdf", "text/plain", "image/png"]),
    st.binary(max_size=64),
)
RECORDS = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "case_reference": NAME,
        "in_reply_to": st.one_of(st.none(), st.uuids().map(str)),
        "created": st.integers(0, 4_000_000_000_000).map(
            lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
        ),
        "sender": NAME,
        "recipients": st.lists(NAME, min_size=1, max_size=3),
        "subject": NAME,
        "body": TEXT,
        "persons": st.lists(CONTACTS, max_size=2),
        "handling_codes": st.sets(st.sampled_from(["H0", "H1", "H2"]), min_size=1).map(sorted),
        "handling_restrictions": st.one_of(st.none(), NAME),
        "source_reliability": st.sampled_from(["A", "B", "C", "X"]),
        "information_accuracy": st.integers(1, 4),
        "attachments": st.lists(ATTACHMENTS, max_size=2),
    }
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(record=RECORDS, level=st.sampled_from(["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]))
def test_round_trip_through_file_and_avro(
    record: dict[str, Any], level: str, tmp_path: Path, store: SchemaStore
) -> None:
    path = write_case_message(tmp_path, record, tlp=level)
    case = read_case_message(path)
    assert case.record == record
    assert case.tlp == level
    _, decoded = store.decode(store.encode("CaseMessage", case.record))
    rewritten = write_case_message(tmp_path / "again", decoded, tlp=level)
    assert rewritten.read_bytes() == path.read_bytes()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    changes=st.dictionaries(
        st.sampled_from(sorted(sample())) | st.text(max_size=6), JSON_VALUES, max_size=3
    )
)
def test_mangled_files_are_refused_with_input_format_error_only(changes: dict[str, Any]) -> None:
    try:
        case = parse_case_message(json.dumps(sample(**changes)))
    except InputFormatError:
        return
    assert case.handling_codes and case.recipients
