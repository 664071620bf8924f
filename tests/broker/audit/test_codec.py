"""The hand-written audit codec writes exactly what the schema store (fastavro) writes.

Reference: `store.encode(AuditLeafContent, ...)` on a dict built here
independently of the codec. Every valid record must give the same bytes
without falling back to the reference; every invalid one must be refused
(MalformedRecord) as the reference refuses it; inputs the fast path leaves to
the reference must still come out identical. The leaf around the content (its
clear part, written and read by hand) is checked against fastavro the same
way, and its sealing against tampering.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import types
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit._codec import (
    AUDIT_CONTENT,
    AUDIT_LEAF,
    LeafEncoder,
    LeafSealer,
    decode_leaf,
    encode_content,
    encode_leaf,
    leaf_encoder,
    parse_leaf,
)
from broker.audit.acts import CopyOutcome, SendOutcome
from broker.audit.keys import AuditKeys, PointKey
from broker.audit.record import ACTIONS, VERDICTS, AuditRecord, DecisionSet, new_decision_ids
from broker.errors import AuditError, MalformedRecord, UnknownSchema
from broker.merkle import leaf_hash
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


SECRET = bytes(range(32))
KEY = PointKey(EP, SECRET)


def opener(ep: str) -> AuditKeys:
    """Keys that open leaves of `ep` sealed with KEY's secret."""
    keys = AuditKeys()
    keys.add(PointKey(ep, SECRET))
    return keys


def reference(store: SchemaStore, records: AuditRecord | Sequence[AuditRecord]) -> bytes:
    """The leaf content as fastavro writes it (via the store), from a dict built here, apart
    from the codec: the shared fields from the first record, one AuditRecord per decision."""
    group = [records] if isinstance(records, AuditRecord) else list(records)
    first = group[0]
    return store.encode(
        AUDIT_CONTENT,
        {
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
                    "details": dict(r.details),
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
    details=st.dictionaries(text, text, max_size=4),
)
indices = st.one_of(st.integers(0, 2**14), st.integers(0, 2**63 - 1))
hashes = st.sampled_from((b"", bytes(32))) | st.binary(max_size=200)


@settings(max_examples=400, deadline=None)
@given(record=records)
def test_fast_encoder_writes_the_bytes_fastavro_writes(
    store: SchemaStore, record: AuditRecord
) -> None:
    encoder = leaf_encoder(store)  # shared across examples: its caches are exercised too
    fallbacks = encoder.fallbacks
    expected = reference(store, record)
    assert encoder.encode(record) == expected
    assert encoder.encode(record) == expected  # now from the caches
    assert encode_content(store, record) == expected
    assert encoder.fallbacks == fallbacks  # all of it on the fast path


@settings(max_examples=200, deadline=None)
@given(record=records, ep=text, index=indices, previous=hashes)
def test_decode_leaf_gives_back_what_was_encoded(
    store: SchemaStore, record: AuditRecord, ep: str, index: int, previous: bytes
) -> None:
    data = encode_leaf(store, ep, index, previous, record, KEY)
    back = decode_leaf(store, data, keys=opener(ep))
    assert (back.enforcement_point, back.index, back.previous_leaf_hash) == (ep, index, previous)
    assert back.data == data and back.leaf_hash == leaf_hash(data) and back.count == 1
    assert back.opened
    assert dataclasses.replace(back.record, labels=None) == dataclasses.replace(record, labels=None)
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
        assert encoder.encode(record) == reference(store, record)
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
        assert encoder.encode(record) == reference(store, record)
    assert encoder.fallbacks == 0


def test_a_mutated_labels_dict_is_encoded_anew(store: SchemaStore) -> None:
    """The labels cache is by identity: it must notice the same dict with other contents."""
    shared: dict[str, Any] = {"tlp": "AMBER", "categories": ["fraud"], "personal_data": False}
    encoder = LeafEncoder(store)
    record = sample(labels=shared)
    encoder.encode(record)
    shared["categories"].append("phishing")
    shared["tlp"] = "RED"
    assert encoder.encode(record) == reference(store, record)


def test_a_personal_data_flag_that_is_not_a_boolean_is_refused_after_a_cache_hit(
    store: SchemaStore,
) -> None:
    shared: dict[str, Any] = {"tlp": "AMBER", "personal_data": True}
    encoder = LeafEncoder(store)
    record = sample(labels=shared)
    encoder.encode(record)
    shared["personal_data"] = 1  # equal to True
    with pytest.raises(MalformedRecord):
        encoder.encode(record)


# -- unusual inputs (most left to fastavro by the fast path): still the same bytes -----------


@pytest.mark.parametrize(
    "changes",
    [
        {"decision_id": uuid.UUID("00000000-0000-4000-8000-000000000002")},
        {"time": datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))},
        {"time": 1_700_000_000_123},
        {"content_hash": bytearray(b"xy")},
        {"labels": types.MappingProxyType({"tlp": "GREEN"})},
        {"labels": {"tlp": "GREEN", "categories": ("a", "b")}},
        {"rule_ids": ["a", "b"]},  # a list where a tuple belongs
        {"reasons": "ab"},  # a string is an array of its characters to fastavro
        {"policy_bundle_hash": ("string", "tuple notation")},
        {"details": types.MappingProxyType({"topic": "t"})},
    ],
)
def test_unusual_but_valid_inputs_come_out_the_same(
    store: SchemaStore, changes: dict[str, Any]
) -> None:
    record = forged(sample(), **changes)
    assert encode_content(store, record) == reference(store, record)


# -- invalid records: refused, as fastavro refuses them ------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"action": "approve"},
        {"action": 0},
        {"decision": "maybe"},
        {"organisation": b"enisa"},
        {"organisation": None},
        {"organisation": "\ud800"},  # a lone surrogate is not UTF-8
        {"message_id": 7},
        {"time": "yesterday"},
        {"content_hash": "not bytes"},
        {"labels": {"tlp": "PURPLE"}},
        {"labels": {"tlp": "AMBER+STRICT"}},  # the envelope's spelling, not Avro's
        {"labels": {}},
        {"labels": {"tlp": "RED", "colour": "red"}},
        {"labels": {"tlp": "RED", "personal_data": 1}},
        {"labels": {"tlp": "RED", "handling_codes": ["H9"]}},
        {"labels": {"tlp": "RED", "categories": "fraud"}},
        {"labels": {"tlp": "RED", "member_states": [1]}},
        {"labels": {"tlp": "RED", "exercise": 5}},
        {"labels": ["tlp", "RED"]},
        {"rule_ids": (1,)},
        {"legal_basis": (b"art. 7",)},
        {"reasons": None},
        {"rejection_reason": 1},
        {"policy_bundle_hash": b"ab"},
        {"details": {"topic": 7}},
        {"details": {1: "x"}},
        {"details": ["topic"]},
    ],
)
def test_invalid_records_are_refused_like_fastavro_refuses_them(
    store: SchemaStore, changes: dict[str, Any]
) -> None:
    record = forged(sample(), **changes)
    # The old codec let the TypeError or ValueError of list() or dict() out on a few.
    with pytest.raises((MalformedRecord, TypeError, ValueError)):
        reference(store, record)
    with pytest.raises(MalformedRecord):
        encode_content(store, record)


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
        encode_content(store, forged(sample(), decision_id=decision_id))


def test_fastavro_alone_writes_a_leaf_it_cannot_read(store: SchemaStore) -> None:
    """Why the encoder checks the decision id itself."""
    content = reference(store, forged(sample(), decision_id="not-a-uuid"))
    data = LeafSealer(store, EP, KEY).seal(3, b"", 1, content)
    with pytest.raises(MalformedRecord):
        decode_leaf(store, data, keys=opener(EP))


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
    assert encoder.encode(sample()) == reference(store, sample())


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
    assert encoder.encode(sample()) == reference(store, sample())
    assert encoder.fallbacks == 1


def test_a_store_without_audit_records_says_so(tmp_path: Path) -> None:
    directory = tmp_path / "schemas"
    directory.mkdir()
    shutil.copy(SCHEMAS / "Labels.avsc", directory)
    store = SchemaStore.load(directory)
    assert not LeafEncoder(store).fast
    with pytest.raises(UnknownSchema):
        encode_content(store, sample())
    with pytest.raises(AuditError, match="AuditLeaf"):
        encode_leaf(store, EP, 0, b"", sample(), KEY)


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
    assert encoder.encode(group) == reference(store, group)
    assert encoder.fallbacks == fallbacks
    data = encode_leaf(store, EP, index, bytes(32), group, KEY)
    back = decode_leaf(store, data, keys=opener(EP))
    assert back.count == len(group)
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
        encode_content(store, group)


def test_an_empty_leaf_is_refused(store: SchemaStore) -> None:
    with pytest.raises(MalformedRecord):
        encode_leaf(store, EP, 0, b"", [], KEY)


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
    content = encoder.encode_set(dset, ids)
    assert content == reference(store, dset.records(ids))
    assert encoder.encode_set(dset, ids) == content  # from the caches
    data = LeafSealer(store, EP, KEY).leaf_of_set(index, bytes(32), dset, ids)
    back = decode_leaf(store, data, keys=opener(EP)).records
    assert [(r.decision_id, r.organisation, r.decision) for r in back] == [
        (i, d.org, d.decision) for i, d in zip(ids, decisions, strict=True)
    ]


def test_a_decision_set_with_a_reject_is_refused(store: SchemaStore) -> None:
    """A policy answers allow, redact or deny; a reject is a rejection record, not a decision."""
    dset = DecisionSet("publish", "msg-1", (_Decision("enisa", "reject"),))
    with pytest.raises(MalformedRecord):
        leaf_encoder(store).encode_set(dset, new_decision_ids(1))


# -- the leaf on the topic: its clear part, and its sealed content --------------------------


@settings(max_examples=200, deadline=None)
@given(ep=text, index=indices, previous=hashes, record=records)
def test_the_clear_part_is_what_fastavro_writes_and_reads(
    store: SchemaStore, ep: str, index: int, previous: bytes, record: AuditRecord
) -> None:
    data = encode_leaf(store, ep, index, previous, record, KEY)
    name, decoded = store.decode(data, expected=AUDIT_LEAF)
    assert name == AUDIT_LEAF
    assert (decoded["enforcement_point"], decoded["index"]) == (ep, index)
    assert (decoded["previous_leaf_hash"], decoded["decisions"]) == (previous, 1)
    assert store.encode(AUDIT_LEAF, decoded) == data  # byte for byte what fastavro writes
    clear = parse_leaf(store, data)
    assert (clear.enforcement_point, clear.index, clear.previous_leaf_hash) == (ep, index, previous)
    assert (clear.salt, clear.sealed) == (decoded["salt"], decoded["content"])
    assert data.startswith(clear.aad) and len(clear.salt) == 16


def test_the_topic_shows_nothing_of_what_was_decided(store: SchemaStore) -> None:
    record = sample(organisation="isac-energy", labels={"tlp": "RED", "incident": "INC-77"})
    data = encode_leaf(store, EP, 0, b"", record, KEY)
    for secret in (b"isac-energy", b"INC-77", b"tlp-amber-community", b"msg-1", b"contact_email"):
        assert secret not in data
    assert not decode_leaf(store, data).opened  # no key: where it sits, nothing more
    other = AuditKeys(bytes(32)).require(EP)  # another node's key for the same name
    keys = AuditKeys()
    keys.add(other)
    with pytest.raises(AuditError, match="does not open"):
        decode_leaf(store, data, keys=keys)


@pytest.mark.parametrize("where", ["index", "previous", "count", "salt", "content"])
def test_a_tampered_leaf_does_not_open(store: SchemaStore, where: str) -> None:
    sealer = LeafSealer(store, EP, KEY)
    content = encode_content(store, sample())
    data = bytearray(sealer.seal(5, bytes(32), 1, content))
    clear = parse_leaf(store, bytes(data))
    offset = {
        "index": len(clear.aad) - 16 - 1 - 1 - 32 - 1 - 1,
        "previous": len(clear.aad) - 16 - 1 - 1 - 5,
        "count": len(clear.aad) - 16 - 1 - 1,
        "salt": len(clear.aad) - 3,
        "content": len(data) - 1,
    }[where]
    data[offset] ^= 0x02
    with pytest.raises((AuditError, MalformedRecord)):
        decode_leaf(store, bytes(data), keys=opener(EP))


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc3\x01", b"\xc3\x01" + bytes(8), b"not avro at all"],
)
def test_garbage_is_not_a_leaf(store: SchemaStore, data: bytes) -> None:
    with pytest.raises((MalformedRecord, UnknownSchema)):
        parse_leaf(store, data)


def test_a_truncated_leaf_is_not_a_leaf(store: SchemaStore) -> None:
    data = encode_leaf(store, EP, 3, bytes(32), sample(), KEY)
    for cut in (11, 20, len(data) - 1):
        with pytest.raises(MalformedRecord):
            parse_leaf(store, data[:cut])
    with pytest.raises(MalformedRecord, match="after its content"):
        parse_leaf(store, data + b"\x00")


def test_decisions_of_two_threads_never_share_a_leaf(store: SchemaStore) -> None:
    """The thread is a leaf's: a leaf of decisions about one message in two threads is
    refused by both encoders, as a leaf mixing two messages is."""
    one, other = sample(thread="case-1"), sample(thread="case-2", decision_id=str(uuid.uuid4()))
    with pytest.raises(MalformedRecord, match="thread"):
        encode_leaf(store, EP, 0, b"", [one, other], KEY)
    with pytest.raises(MalformedRecord, match="thread"):
        encode_content(store, [one, other])
    data = encode_leaf(store, EP, 0, b"", [one], KEY)
    assert decode_leaf(store, data, keys=opener(EP)).record.thread == "case-1"
    assert b"case-1" not in data  # sealed, as the rest of what was decided


# -- send outcomes: what was sent where, straight into a leaf -------------------------------

copies = st.builds(
    CopyOutcome,
    community=text,
    topic=text,
    recipients=st.lists(text, min_size=1, max_size=6).map(tuple),
    partition=st.none() | st.integers(0, 2**31),
    offset=st.none() | st.integers(0, 2**62),
    error=st.none() | st.sampled_from(("publisher-stopped", "kafka-error")),
    reason=text,
    redacted_fields=st.lists(text, max_size=3).map(tuple),
)


@settings(max_examples=150, deadline=None)
@given(message_id=text, outcome_copies=st.lists(copies, min_size=1, max_size=4))
def test_a_send_outcome_is_the_leaf_of_its_records(
    store: SchemaStore, message_id: str, outcome_copies: list[CopyOutcome]
) -> None:
    outcome = SendOutcome(message_id, tuple(outcome_copies))
    ids = new_decision_ids(outcome.count)
    encoder = leaf_encoder(store)
    fallbacks = encoder.fallbacks
    content = encoder.encode_outcome(outcome, ids)
    assert content == reference(store, outcome.records(ids))
    assert encoder.fallbacks == fallbacks
    data = LeafSealer(store, EP, KEY).leaf_of_set(0, b"", outcome, ids)
    back = decode_leaf(store, data, keys=opener(EP)).records
    assert [(r.organisation, r.decision) for r in back] == [
        (org, "sent" if c.error is None else "unsent")
        for c in outcome_copies
        for org in c.recipients
    ]
