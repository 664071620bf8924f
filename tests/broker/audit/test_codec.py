"""The hand-written audit leaf encoder writes exactly what the schema store (fastavro) writes.

Reference: `store.encode(AuditLeaf, ...)` on a dict built here independently
of the codec. Every valid record must give the
same bytes without falling back to the reference; every invalid one must be
refused (MalformedRecord) as the reference refuses it; inputs the fast path
leaves to the reference must still come out identical.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import types
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit._codec import (
    AUDIT_LEAF,
    LeafEncoder,
    decode_leaf,
    encode_leaf,
    leaf_encoder,
)
from broker.audit.record import ACTIONS, VERDICTS, AuditRecord, DecisionSet, new_decision_ids
from broker.errors import MalformedRecord, UnknownSchema
from broker.schemas import SchemaStore, default_store

EP = "cert-eu/publish"
SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
TLPS = ("CLEAR", "GREEN", "AMBER", "AMBER_STRICT", "RED")
LABEL_DEFAULTS: dict[str, Any] = {
    "handling_codes": [],
    "categories": [],
    "personal_data": False,
    "exercise": None,
    "incident": None,
    "member_states": [],
    "redacted_fields": [],
}


def reference(
    store: SchemaStore,
    ep: Any,
    index: Any,
    previous: Any,
    records: AuditRecord | Sequence[AuditRecord],
) -> bytes:
    """The leaf as fastavro writes it (via the store), from a dict built here, apart from
    the codec: the shared fields from the first record, one AuditRecord per decision."""
    group = [records] if isinstance(records, AuditRecord) else list(records)
    first = group[0]
    return store.encode(
        AUDIT_LEAF,
        {
            "enforcement_point": ep,
            "index": index,
            "previous_leaf_hash": previous,
            "action": first.action,
            "message_id": first.message_id,
            "content_hash": first.content_hash,
            "labels": dict(first.labels) if first.labels is not None else None,
            "policy_bundle_hash": first.policy_bundle_hash,
            "records": [
                {
                    "decision_id": r.decision_id,
                    "time": r.time,
                    "organisation": r.organisation,
                    "decision": r.decision,
                    "rule_ids": list(r.rule_ids),
                    "legal_basis": list(r.legal_basis),
                    "obligations": list(r.obligations),
                    "redacted_fields": list(r.redacted_fields),
                    "reasons": list(r.reasons),
                    "rejection_reason": r.rejection_reason,
                }
                for r in group
            ],
            "thread": first.thread,
        },
    )


def forged(record: AuditRecord, **changes: Any) -> AuditRecord:
    """A copy with fields set past `__post_init__`, as a buggy caller could hand one over."""
    copy = dataclasses.replace(record)
    for name, value in changes.items():
        object.__setattr__(copy, name, value)
    return copy


def sample(**changes: Any) -> AuditRecord:
    base = AuditRecord(
        action="publish",
        organisation="enisa",
        message_id="msg-1",
        decision="redact",
        decision_id="00000000-0000-4000-8000-000000000001",
        time=datetime(2026, 11, 27, 12, 0, 0, 123000, tzinfo=UTC),
        content_hash=bytes(range(32)),
        labels={"tlp": "AMBER", "categories": ["fraud"], "personal_data": True},
        rule_ids=("tlp-amber-community",),
        legal_basis=("Regulation (EU) 2019/881 art. 7",),
        obligations=("no-onward-sharing",),
        redacted_fields=("contact_email",),
        reasons=("member of the community",),
        policy_bundle_hash="ab" * 32,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return default_store()


# -- valid records: same bytes, and they decode back -----------------------------------

text = st.text(max_size=80)  # surrogates excluded: not encodable as UTF-8, see the invalid cases
string_lists = st.lists(text, max_size=70).map(tuple)  # 64+ items: a two-byte count
many = st.one_of(st.lists(text, max_size=3), st.lists(text, max_size=70).map(tuple))
labels = st.fixed_dictionaries(
    {"tlp": st.sampled_from(TLPS)},
    optional={  # absent fields take their defaults, lists or tuples both arrays
        "handling_codes": st.lists(st.sampled_from(("H0", "H1", "H2", "H3")), max_size=6),
        "categories": many,
        "personal_data": st.booleans(),
        "exercise": st.none() | text,
        "incident": st.none() | text,
        "member_states": many,
        "redacted_fields": many,
    },
)
records = st.builds(
    AuditRecord,
    action=st.sampled_from(ACTIONS),
    organisation=text,
    message_id=text,
    decision=st.sampled_from(VERDICTS),
    decision_id=st.uuids().map(str),
    time=st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from((UTC, timezone(timedelta(hours=-5)), None)),
    ),
    content_hash=st.none() | st.binary(max_size=80),
    labels=st.none() | labels,
    rule_ids=string_lists,
    legal_basis=string_lists,
    obligations=string_lists,
    redacted_fields=string_lists,
    reasons=string_lists,
    rejection_reason=st.none() | text,
    policy_bundle_hash=st.none() | text,
    thread=st.none() | text,
)
indices = st.one_of(st.integers(0, 2**14), st.integers(0, 2**63 - 1))
hashes = st.sampled_from((b"", bytes(32))) | st.binary(max_size=200)


@settings(max_examples=400, deadline=None)
@given(record=records, ep=text, index=indices, previous=hashes)
def test_fast_encoder_writes_the_bytes_fastavro_writes(
    store: SchemaStore, record: AuditRecord, ep: str, index: int, previous: bytes
) -> None:
    encoder = leaf_encoder(store)  # shared across examples: its caches are exercised too
    fallbacks = encoder.fallbacks
    expected = reference(store, ep, index, previous, record)
    assert encoder.encode(ep, index, previous, record) == expected
    assert encoder.encode(ep, index, previous, record) == expected  # now from the caches
    assert encode_leaf(store, ep, index, previous, record) == expected
    assert encoder.fallbacks == fallbacks  # all of it on the fast path


@settings(max_examples=200, deadline=None)
@given(record=records, ep=text, index=indices, previous=hashes)
def test_decode_leaf_gives_back_what_was_encoded(
    store: SchemaStore, record: AuditRecord, ep: str, index: int, previous: bytes
) -> None:
    data = encode_leaf(store, ep, index, previous, record)
    back = decode_leaf(store, data)
    assert (back.enforcement_point, back.index, back.previous_leaf_hash) == (ep, index, previous)
    assert back.data == data
    assert dataclasses.replace(back.record, labels=None) == dataclasses.replace(record, labels=None)
    if record.labels is None:
        assert back.record.labels is None
    else:
        full = {**LABEL_DEFAULTS, **record.labels}
        assert back.record.labels == {
            k: list(v) if isinstance(v, tuple) else v for k, v in full.items()
        }


def test_long_strings_and_arrays_take_multi_byte_lengths(store: SchemaStore) -> None:
    for n in (63, 64, 127, 128, 8191, 8192, 70_000):
        record = sample(
            organisation="é" * n,  # 2 bytes each: the length is in bytes, not characters
            rule_ids=("r",) * n,
            labels={"tlp": "RED", "member_states": ["FR"] * n, "handling_codes": ["H2"] * 70},
        )
        encoder = LeafEncoder(store)
        assert encoder.encode(EP, n, bytes(n), record) == reference(store, EP, n, bytes(n), record)
        assert encoder.fallbacks == 0


def test_every_enum_symbol_and_index_boundary(store: SchemaStore) -> None:
    encoder = LeafEncoder(store)
    variants = [
        *(sample(action=a) for a in ACTIONS),
        *(sample(decision=v) for v in VERDICTS),
        *(sample(labels={"tlp": t}) for t in TLPS),
        *(sample(labels={"tlp": "RED", "handling_codes": [h]}) for h in ("H0", "H1", "H2", "H3")),
    ]
    for record in variants:
        for index in (0, 1, 63, 64, 8191, 8192, 2**31, 2**63 - 1):
            expected = reference(store, EP, index, b"", record)
            assert encoder.encode(EP, index, b"", record) == expected
    assert encoder.fallbacks == 0


def test_a_mutated_labels_dict_is_encoded_anew(store: SchemaStore) -> None:
    """The labels cache is by identity: it must notice the same dict with other contents."""
    shared: dict[str, Any] = {"tlp": "AMBER", "categories": ["fraud"], "personal_data": False}
    encoder = LeafEncoder(store)
    record = sample(labels=shared)
    encoder.encode(EP, 0, b"", record)
    shared["categories"].append("phishing")
    shared["tlp"] = "RED"
    assert encoder.encode(EP, 1, b"", record) == reference(store, EP, 1, b"", record)


def test_a_personal_data_flag_that_is_not_a_boolean_is_refused_after_a_cache_hit(
    store: SchemaStore,
) -> None:
    shared: dict[str, Any] = {"tlp": "AMBER", "personal_data": True}
    encoder = LeafEncoder(store)
    record = sample(labels=shared)
    encoder.encode(EP, 0, b"", record)
    shared["personal_data"] = 1  # equal to True
    with pytest.raises(MalformedRecord):
        encoder.encode(EP, 1, b"", record)


# -- unusual inputs (most left to fastavro by the fast path): still the same bytes -----------


@pytest.mark.parametrize(
    ("ep", "index", "previous", "changes"),
    [
        (EP, True, b"", {}),  # a bool is an int to fastavro
        (EP, 3, bytearray(b"ab"), {}),
        (EP, 3, memoryview(b"ab"), {}),
        (EP, 3, b"", {"decision_id": uuid.UUID("00000000-0000-4000-8000-000000000002")}),
        (EP, 3, b"", {"time": datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))}),
        (EP, 3, b"", {"time": 1_700_000_000_123}),
        (EP, 3, b"", {"content_hash": bytearray(b"xy")}),
        (EP, 3, b"", {"labels": types.MappingProxyType({"tlp": "GREEN"})}),
        (EP, 3, b"", {"labels": {"tlp": "GREEN", "categories": ("a", "b")}}),
        (EP, 3, b"", {"rule_ids": ["a", "b"]}),  # a list where a tuple belongs
        (EP, 3, b"", {"reasons": "ab"}),  # a string is an array of its characters to fastavro
        (EP, 3, b"", {"policy_bundle_hash": ("string", "tuple notation")}),
    ],
)
def test_unusual_but_valid_inputs_come_out_the_same(
    store: SchemaStore, ep: str, index: Any, previous: Any, changes: dict[str, Any]
) -> None:
    record = forged(sample(), **changes)
    assert encode_leaf(store, ep, index, previous, record) == reference(
        store, ep, index, previous, record
    )


# -- invalid records: refused, as fastavro refuses them ------------------------------------


@pytest.mark.parametrize(
    ("ep", "index", "previous", "changes"),
    [
        (EP, 3, b"", {"action": "approve"}),
        (EP, 3, b"", {"action": 0}),
        (EP, 3, b"", {"decision": "maybe"}),
        (EP, 3, b"", {"organisation": b"enisa"}),
        (EP, 3, b"", {"organisation": None}),
        (EP, 3, b"", {"organisation": "\ud800"}),  # a lone surrogate is not UTF-8
        (EP, 3, b"", {"message_id": 7}),
        (None, 3, b"", {}),
        (EP, "3", b"", {}),
        (EP, 2**63, b"", {}),
        (EP, -(2**63) - 1, b"", {}),
        (EP, 3, "not bytes", {}),
        (EP, 3, b"", {"time": "yesterday"}),
        (EP, 3, b"", {"content_hash": "not bytes"}),
        (EP, 3, b"", {"labels": {"tlp": "PURPLE"}}),
        (EP, 3, b"", {"labels": {"tlp": "AMBER+STRICT"}}),  # the envelope's spelling, not Avro's
        (EP, 3, b"", {"labels": {}}),
        (EP, 3, b"", {"labels": {"tlp": "RED", "colour": "red"}}),
        (EP, 3, b"", {"labels": {"tlp": "RED", "personal_data": 1}}),
        (EP, 3, b"", {"labels": {"tlp": "RED", "handling_codes": ["H9"]}}),
        (EP, 3, b"", {"labels": {"tlp": "RED", "categories": "fraud"}}),
        (EP, 3, b"", {"labels": {"tlp": "RED", "member_states": [1]}}),
        (EP, 3, b"", {"labels": {"tlp": "RED", "exercise": 5}}),
        (EP, 3, b"", {"labels": ["tlp", "RED"]}),
        (EP, 3, b"", {"rule_ids": (1,)}),
        (EP, 3, b"", {"legal_basis": (b"art. 7",)}),
        (EP, 3, b"", {"reasons": None}),
        (EP, 3, b"", {"rejection_reason": 1}),
        (EP, 3, b"", {"policy_bundle_hash": b"ab"}),
    ],
)
def test_invalid_records_are_refused_like_fastavro_refuses_them(
    store: SchemaStore, ep: Any, index: Any, previous: Any, changes: dict[str, Any]
) -> None:
    record = forged(sample(), **changes)
    # The old codec let the TypeError or ValueError of list() or dict() out on a few.
    with pytest.raises((MalformedRecord, TypeError, ValueError)):
        reference(store, ep, index, previous, record)
    with pytest.raises(MalformedRecord):
        encode_leaf(store, ep, index, previous, record)


@pytest.mark.parametrize(
    "decision_id",
    [
        "not-a-uuid",
        "",
        "00000000-0000-4000-8000-00000000000G",
        "00000000-0000-4000-8000-00000000000A",  # decodes as ...a: the id would not come back
        "{00000000-0000-4000-8000-000000000001}",
        "00000000000040008000000000000001",
        5,
        None,
    ],
)
def test_a_decision_id_that_is_not_a_canonical_uuid_is_refused(
    store: SchemaStore, decision_id: Any
) -> None:
    """Stricter than fastavro, which writes any string as a uuid and then cannot read it back."""
    with pytest.raises(MalformedRecord):
        encode_leaf(store, EP, 3, b"", forged(sample(), decision_id=decision_id))


def test_fastavro_alone_writes_a_leaf_it_cannot_read(store: SchemaStore) -> None:
    """Why encode_leaf checks the decision id itself."""
    data = reference(store, EP, 3, b"", forged(sample(), decision_id="not-a-uuid"))
    with pytest.raises(MalformedRecord):
        decode_leaf(store, data)


# -- another schema: the store's encoder, and nothing else -----------------------------------


def _store_with(tmp_path: Path, change: Any) -> SchemaStore:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, directory)
    path = directory / "AuditRecord.avsc"
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema))
    return SchemaStore.load(directory)


def test_documentation_changes_keep_the_fast_path(tmp_path: Path) -> None:
    store = _store_with(tmp_path, lambda s: s.update(doc="reworded"))
    encoder = LeafEncoder(store)
    assert encoder.fast
    assert encoder.encode(EP, 1, b"", sample()) == reference(store, EP, 1, b"", sample())


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["fields"][3]["type"]["symbols"].append("escalate"),  # decision enum
        lambda s: s["fields"].append({"name": "note", "type": "string", "default": ""}),
        lambda s: s["fields"][4].update(default=["r"]),  # rule_ids default
    ],
    ids=["enum-symbol", "new-field", "default"],
)
def test_another_audit_record_schema_goes_to_the_store(tmp_path: Path, change: Any) -> None:
    store = _store_with(tmp_path, change)
    encoder = LeafEncoder(store)
    assert not encoder.fast
    assert encoder.encode(EP, 1, b"", sample()) == reference(store, EP, 1, b"", sample())
    assert encoder.fallbacks == 1


def test_a_store_without_audit_records_says_so(tmp_path: Path) -> None:
    directory = tmp_path / "schemas"
    directory.mkdir()
    shutil.copy(SCHEMAS / "Labels.avsc", directory)
    store = SchemaStore.load(directory)
    assert not LeafEncoder(store).fast
    with pytest.raises(UnknownSchema):
        encode_leaf(store, EP, 0, b"", sample())


def test_one_encoder_per_store(store: SchemaStore) -> None:
    assert leaf_encoder(store) is leaf_encoder(store)
    assert leaf_encoder(store).fast
    assert leaf_encoder(SchemaStore.load(SCHEMAS)) is not leaf_encoder(store)


# -- leaves of several decisions ------------------------------------------------------------


def _decisions_of_one_message(base: AuditRecord, orgs: Sequence[str]) -> list[AuditRecord]:
    return [
        dataclasses.replace(
            base,
            organisation=org,
            decision_id=str(uuid.uuid4()),
            decision="deny" if i % 3 else "allow",
            rule_ids=(f"rule-{i % 2}",),
        )
        for i, org in enumerate(orgs)
    ]


@settings(max_examples=150, deadline=None)
@given(record=records, orgs=st.lists(text, min_size=1, max_size=20), index=indices)
def test_a_leaf_of_many_decisions_is_what_fastavro_writes_and_decodes_back(
    store: SchemaStore, record: AuditRecord, orgs: list[str], index: int
) -> None:
    group = _decisions_of_one_message(record, orgs)
    encoder = leaf_encoder(store)
    fallbacks = encoder.fallbacks
    data = encoder.encode(EP, index, bytes(32), group)
    assert data == reference(store, EP, index, bytes(32), group)
    assert encoder.fallbacks == fallbacks
    back = decode_leaf(store, data)
    assert [r.decision_id for r in back.records] == [r.decision_id for r in group]
    assert [r.organisation for r in back.records] == orgs
    assert {(d.index, d.leaf_hash) for d in back.decisions()} == {(index, back.leaf_hash)}


@pytest.mark.parametrize(
    "field",
    ["action", "message_id", "content_hash", "labels", "policy_bundle_hash"],
)
def test_decisions_that_do_not_share_the_leaf_fields_are_refused(
    store: SchemaStore, field: str
) -> None:
    other: Any = {
        "action": "receive",
        "message_id": "msg-2",
        "content_hash": bytes(32),
        "labels": {"tlp": "RED"},
        "policy_bundle_hash": "cd" * 32,
    }[field]
    group = [
        sample(),
        dataclasses.replace(sample(), decision_id=str(uuid.uuid4()), **{field: other}),
    ]
    with pytest.raises(MalformedRecord, match="share"):
        encode_leaf(store, EP, 0, b"", group)


def test_an_empty_leaf_is_refused(store: SchemaStore) -> None:
    with pytest.raises(MalformedRecord):
        encode_leaf(store, EP, 0, b"", [])


# -- decision sets: a message's policy decisions straight into one leaf ---------------------


@dataclasses.dataclass(frozen=True)
class _Decision:
    org: str
    decision: str
    rules: tuple[str, ...] = ()
    legal_basis: tuple[str, ...] = ()
    obligations: tuple[str, ...] = ()
    redact_fields: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()


policy_decisions = st.builds(
    _Decision,
    org=text,
    decision=st.sampled_from(("allow", "redact", "deny")),
    rules=string_lists,
    legal_basis=string_lists,
    obligations=string_lists,
    redact_fields=string_lists,
    reasons=string_lists,
)


@settings(max_examples=150, deadline=None)
@given(
    decisions=st.lists(policy_decisions, min_size=1, max_size=16),
    record=records,
    index=indices,
)
def test_a_decision_set_is_the_leaf_of_its_records(
    store: SchemaStore, decisions: list[_Decision], record: AuditRecord, index: int
) -> None:
    dset = DecisionSet(
        record.action,
        record.message_id,
        tuple(decisions),
        content_hash=record.content_hash,
        labels=record.labels,
        policy_bundle_hash=record.policy_bundle_hash,
        time=record.time,
        thread=record.thread,
    )
    ids = new_decision_ids(len(decisions))
    encoder = leaf_encoder(store)
    data = encoder.encode_set(EP, index, bytes(32), dset, ids)
    assert data == reference(store, EP, index, bytes(32), dset.records(ids))
    assert encoder.encode_set(EP, index, bytes(32), dset, ids) == data  # from the caches
    back = decode_leaf(store, data).records
    assert [(r.decision_id, r.organisation, r.decision) for r in back] == [
        (i, d.org, d.decision) for i, d in zip(ids, decisions, strict=True)
    ]


def test_a_decision_set_with_a_reject_is_refused(store: SchemaStore) -> None:
    """A policy answers allow, redact or deny; a reject is a rejection record, not a decision."""
    dset = DecisionSet("publish", "msg-1", (_Decision("enisa", "reject"),))
    with pytest.raises(MalformedRecord):
        leaf_encoder(store).encode_set(EP, 0, b"", dset, new_decision_ids(1))


def test_decisions_of_two_threads_never_share_a_leaf(store: SchemaStore) -> None:
    """The thread is a leaf's: a leaf of decisions about one message in two threads is
    refused by both encoders, as a leaf mixing two messages is."""
    one, other = sample(thread="case-1"), sample(thread="case-2", decision_id=str(uuid.uuid4()))
    with pytest.raises(MalformedRecord, match="thread"):
        encode_leaf(store, EP, 0, b"", [one, other])
    assert decode_leaf(store, encode_leaf(store, EP, 0, b"", [one])).record.thread == "case-1"


def test_a_leaf_written_before_the_thread_field_still_decodes_and_hashes_as_written(
    store: SchemaStore,
) -> None:
    """schemas/previous/AuditLeaf.v1.avsc: leaves of the log as it was keep their hash (the
    bytes as written) and decode with no thread."""
    old = json.loads((SCHEMAS / "previous" / "AuditLeaf.v1.avsc").read_text())
    canonical = fastavro.schema.to_parsing_canonical_form(old)
    fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    assert fingerprint.hex() == "8f81f9f9c2beff26"  # the AuditLeaf every earlier log holds
    record = sample()
    leaf = {
        "enforcement_point": EP,
        "index": 0,
        "previous_leaf_hash": b"",
        "action": "publish",
        "message_id": "msg-1",
        "content_hash": None,
        "labels": None,
        "policy_bundle_hash": None,
        "records": [
            {
                "decision_id": record.decision_id,
                "time": record.time,
                "organisation": "enisa",
                "decision": "allow",
            }
        ],
    }
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + fingerprint)
    fastavro.schemaless_writer(buf, fastavro.parse_schema(old), leaf)
    back = decode_leaf(store, buf.getvalue())
    assert back.record.thread is None and back.record.organisation == "enisa"
    assert back.data == buf.getvalue()
