"""Audit leaves, their sealed contents and checkpoints, to and from their Avro bytes.

A leaf on the topic (`eu.jcu.v1.AuditLeaf`) holds in the clear only what
verification needs (enforcement point, index, link to the previous leaf, how
many records, a salt) and its content sealed: `eu.jcu.v1.AuditLeafContent`,
the records an enforcement point wrote together about one message (one per
organisation on publish, one on receive) and what they share (action, message
id, content hash, labels, policy bundle hash, thread). See `broker.audit.keys`.

Contents are written for every published and received message, so
`LeafEncoder` writes them by hand: the Avro binary encoding of exactly the
schema it was written for, byte for byte what `SchemaStore.encode` writes,
with the parts that repeat (organisations, labels, the policy's answer)
encoded once and cached. Whatever it is not sure about (another schema, an
input type it does not handle) goes to `SchemaStore.encode`, which also
produces the errors: the two paths differ in speed only. The clear part of a
leaf is as simple as Avro gets and is written and read by hand too (the
verifier reads millions); both are property-tested against fastavro.
Checkpoints and cosignatures go through the schema store.
"""

from __future__ import annotations

import re
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from broker.audit.acts import SendOutcome, copy_details
from broker.audit.checkpoint import SignedCheckpoint
from broker.audit.keys import AuditKeys, PointKey, new_salt
from broker.audit.record import (
    ACTIONS,
    VERDICTS,
    AuditRecord,
    DecisionSet,
    LoggedLeaf,
    PolicyDecision,
)
from broker.avro_binary import decode_bytes, decode_long
from broker.avro_binary import encode_long as _varint
from broker.clock import to_millis
from broker.errors import AuditError, MalformedRecord, UnknownSchema
from broker.merkle import leaf_hash
from broker.schemas import SINGLE_OBJECT_MAGIC, SchemaStore
from broker.vocabulary import HANDLING_CODES, TLP_LEVELS, tlp_avro_symbol

AUDIT_LEAF = "eu.jcu.v1.AuditLeaf"
AUDIT_CONTENT = "eu.jcu.v1.AuditLeafContent"
AUDIT_RECORD = "eu.jcu.v1.AuditRecord"
CHECKPOINT = "eu.jcu.v1.Checkpoint"
COSIGNATURE = "eu.jcu.v1.Cosignature"


def _array(items: Any) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _nullable(kind: Any) -> list[Any]:
    return ["null", kind]


def _enum(name: str, symbols: Sequence[str]) -> dict[str, Any]:
    return {"type": "enum", "name": name, "symbols": list(symbols)}


_ACTIONS: Final = ACTIONS
_POLICY_VERDICTS: Final = frozenset(("allow", "redact", "deny"))  # what a policy answers
_DECISIONS: Final = VERDICTS
_TLPS: Final = tuple(tlp_avro_symbol(level) for level in TLP_LEVELS)  # Labels.tlp's symbols
_HANDLING_CODES: Final = HANDLING_CODES
_LABEL_FIELDS: Final = (
    "tlp",
    "handling_codes",
    "categories",
    "personal_data",
    "exercise",
    "incident",
    "member_states",
    "redacted_fields",
)

_LABELS_SCHEMA: Final[dict[str, Any]] = {
    "type": "record",
    "name": "Labels",
    "namespace": "eu.jcu.v1",
    "fields": [
        {"name": "tlp", "type": _enum("Tlp", _TLPS)},
        {
            "name": "handling_codes",
            "type": _array(_enum("HandlingCode", _HANDLING_CODES)),
            "default": [],
        },
        {"name": "categories", "type": _array("string"), "default": []},
        {"name": "personal_data", "type": "boolean", "default": False},
        {"name": "exercise", "type": _nullable("string"), "default": None},
        {"name": "incident", "type": _nullable("string"), "default": None},
        {"name": "member_states", "type": _array("string"), "default": []},
        {"name": "redacted_fields", "type": _array("string"), "default": []},
    ],
}
_RECORD_SCHEMA: Final[dict[str, Any]] = {
    "type": "record",
    "name": "AuditRecord",
    "namespace": "eu.jcu.v1",
    "fields": [
        {"name": "decision_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "organisation", "type": "string"},
        {"name": "decision", "type": _enum("AuditDecision", _DECISIONS)},
        {"name": "rule_ids", "type": _array("string"), "default": []},
        {"name": "legal_basis", "type": _array("string"), "default": []},
        {"name": "obligations", "type": _array("string"), "default": []},
        {"name": "redacted_fields", "type": _array("string"), "default": []},
        {"name": "reasons", "type": _array("string"), "default": []},
        {"name": "rejection_reason", "type": _nullable("string"), "default": None},
        {"name": "details", "type": {"type": "map", "values": "string"}, "default": {}},
    ],
}
#: The stand-alone AuditLeafContent schema (docs left out) the hand-written
#: encoder implements; any other schema (a field, a symbol or a default
#: changed) gets the schema store's encoder.
_WRITTEN_FOR: Final[dict[str, Any]] = {
    "type": "record",
    "name": "AuditLeafContent",
    "namespace": "eu.jcu.v1",
    "fields": [
        {"name": "action", "type": _enum("AuditAction", _ACTIONS)},
        {"name": "message_id", "type": "string"},
        {"name": "content_hash", "type": _nullable("bytes"), "default": None},
        {"name": "labels", "type": _nullable(_LABELS_SCHEMA), "default": None},
        {"name": "policy_bundle_hash", "type": _nullable("string"), "default": None},
        {"name": "records", "type": _array(_RECORD_SCHEMA)},
        {"name": "thread", "type": _nullable("string"), "default": None},
    ],
}

#: A decision id as `str(uuid.UUID(...))` writes it, which is what `decode_leaf` gives back.
_CANONICAL_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_is_canonical_uuid: Final = _CANONICAL_UUID.fullmatch
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_NULL: Final = b"\x00"  # union branch 0 (null); also an empty array, false, long 0
_SOME: Final = b"\x02"  # union branch 1
_UUID_LENGTH: Final = b"\x48"  # 36, zig-zag
_TRUE, _FALSE = b"\x01", b"\x00"  # boolean: one byte
_ACTION_BYTES: Final = {a: bytes((2 * i,)) for i, a in enumerate(_ACTIONS)}  # enum: position
_LABEL_KEYS: Final = frozenset(_LABEL_FIELDS)
_UNSET: Final = object()  # "nothing cached yet": no record field is this object
#: Bounds of the caches; when one is full it starts over (cheap, and rare).
_MAX_NAMES, _MAX_TAILS = 1024, 4096


_LENGTHS: Final = tuple(_varint(n) for n in range(256))


def _length(n: int) -> bytes:
    """The length of a string, bytes or array (an Avro long)."""
    return _LENGTHS[n] if n < 256 else _varint(n)


def _string(value: object) -> bytes | None:
    """Avro string, or None if `value` is not a plain str (the slow path decides)."""
    if type(value) is not str:
        return None
    data = value.encode()  # UnicodeEncodeError (lone surrogates) is the caller's fallback
    return _length(len(data)) + data


def _nullable_string(value: object) -> bytes | None:
    if value is None:
        return _NULL
    data = _string(value)
    return None if data is None else _SOME + data


def _string_array(values: object) -> bytes | None:
    """Avro array of strings: one block (count, items), then the 0 that ends it."""
    if type(values) is not tuple and type(values) is not list:
        return None
    if not values:
        return _NULL
    parts = [_length(len(values))]
    for v in values:
        data = _string(v)
        if data is None:
            return None
        parts.append(data)
    parts.append(_NULL)
    return b"".join(parts)


def _enum_array(values: object, symbols: tuple[str, ...]) -> bytes | None:
    if type(values) is not tuple and type(values) is not list:
        return None
    if not values:
        return _NULL
    if any(type(v) is not str or v not in symbols for v in values):
        return None
    return b"".join((_length(len(values)), *(_varint(symbols.index(v)) for v in values), _NULL))


def _encode_labels(labels: Mapping[str, Any]) -> bytes | None:
    """Union branch 1 and the `eu.jcu.v1.Labels` record; absent fields take their defaults."""
    if not labels.keys() <= _LABEL_KEYS:
        return None
    tlp = labels.get("tlp")
    personal_data = labels.get("personal_data", False)
    if type(tlp) is not str or tlp not in _TLPS or type(personal_data) is not bool:
        return None
    parts = [
        _SOME,
        _varint(_TLPS.index(tlp)),  # enum: the symbol's position
        _enum_array(labels.get("handling_codes", []), _HANDLING_CODES),
        _string_array(labels.get("categories", [])),
        _TRUE if personal_data else _FALSE,
        _nullable_string(labels.get("exercise")),
        _nullable_string(labels.get("incident")),
        _string_array(labels.get("member_states", [])),
        _string_array(labels.get("redacted_fields", [])),
    ]
    if any(p is None for p in parts):
        return None
    return b"".join(p for p in parts if p is not None)


def _snapshot(labels: Mapping[str, Any]) -> dict[str, Any]:
    """A copy that a later mutation of `labels` (or of its lists) cannot reach."""
    return {k: list(v) if type(v) is list else v for k, v in labels.items()}


def _strip_docs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_docs(v) for k, v in schema.items() if k != "doc"}
    if isinstance(schema, list):
        return [_strip_docs(v) for v in schema]
    return schema


def _check_decision_id(decision_id: object) -> None:
    """A leaf whose decision id is not a UUID would not decode; refuse it before it is written.

    fastavro writes any string under the `uuid` logical type; reading it back
    (`decode_leaf`) fails, and a non-canonical spelling would come back
    different from what the writer was told. So: the canonical lowercase form
    (what `uuid.uuid4()` gives), or a `uuid.UUID`.
    """
    if isinstance(decision_id, uuid.UUID):
        return
    if type(decision_id) is not str or _CANONICAL_UUID.fullmatch(decision_id) is None:
        raise MalformedRecord(
            f"record does not match schema {AUDIT_RECORD}: decision_id {decision_id!r} "
            "is not a UUID in canonical form"
        )


def _string_map(values: object) -> bytes | None:
    """Avro map of strings: one block (count, key, value...), then the 0 that ends it."""
    if not isinstance(values, Mapping):
        return None
    if not values:
        return _NULL
    parts = [_length(len(values))]
    for k, v in values.items():
        key, value = _string(k), _string(v)
        if key is None or value is None:
            return None
        parts += (key, value)
    parts.append(_NULL)
    return b"".join(parts)


def _as_avro(records: Sequence[AuditRecord]) -> dict[str, Any]:
    """The leaf content as the schema store's encoder takes it."""
    if not records:
        raise MalformedRecord("an audit leaf holds at least one record")
    first = records[0]
    shared = _shared(first)
    if any(_shared(r) != shared for r in records[1:]):
        raise MalformedRecord(
            "the records of one audit leaf must share action, message id, content hash, "
            "labels, policy bundle hash and thread"
        )
    try:
        return {
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
                for r in records
            ],
            "thread": first.thread,
        }
    except (TypeError, ValueError) as exc:  # labels not a mapping, a list field not iterable
        raise MalformedRecord(f"record does not match schema {AUDIT_CONTENT}: {exc}") from None


def _shared(record: AuditRecord) -> tuple[Any, ...]:
    """What the records of one leaf have in common (stored once, in the leaf)."""
    return (
        record.action,
        record.message_id,
        record.content_hash,
        record.labels,
        record.policy_bundle_hash,
        record.thread,
    )


def can_share_leaf(a: AuditRecord, b: AuditRecord) -> bool:
    """Whether two records can go in one leaf: same action, message, content, labels, policy
    and thread."""
    return (
        a.message_id == b.message_id
        and a.thread == b.thread
        and a.action == b.action
        and a.content_hash == b.content_hash
        and a.policy_bundle_hash == b.policy_bundle_hash
        and (a.labels is b.labels or a.labels == b.labels)
    )


class LeafEncoder:
    """Audit leaf contents of one schema store, each byte-identical to
    `store.encode(AUDIT_CONTENT, ...)`.

    Hold one per store (`leaf_encoder` keeps one per store for you). Not meant
    to be shared between threads without a lock: its caches are plain dicts.
    """

    def __init__(self, store: SchemaStore) -> None:
        self._store = store
        self._header = b""
        #: Whether the hand-written encoder is in use (the store has the schema it was written for).
        self.fast = False
        #: Contents that went to `store.encode` (all of them when not `fast`): a figure to watch.
        self.fallbacks = 0
        try:
            schema = store.schema(AUDIT_CONTENT)
        except UnknownSchema:
            return  # store.encode says so, leaf by leaf
        self._header = SINGLE_OBJECT_MAGIC + store.fingerprint(AUDIT_CONTENT)
        self._names: dict[str, bytes] = {}  # organisations
        self._tails: dict[tuple[Any, ...], bytes] = {}  # organisation .. rejection_reason
        self._by_decision: dict[int, tuple[PolicyDecision, bytes]] = {}  # the same, by Decision
        self._last_tails: tuple[tuple[PolicyDecision, ...], list[bytes]] | None = None
        self._last_time: tuple[object, bytes] = (_UNSET, b"")
        self._last_labels: tuple[object, dict[str, Any], bytes] = (_UNSET, {}, b"")
        self.fast = _strip_docs(schema) == _WRITTEN_FOR and self._agrees_with_store()

    def _agrees_with_store(self) -> bool:
        """Both encoders on a leaf that uses every field: a fastavro upgrade cannot slip by."""
        labels = {
            "tlp": "AMBER_STRICT",
            "handling_codes": ["H1", "H3"],
            "categories": ["fraud", "malicious-code"],
            "personal_data": True,
            "exercise": "ex-1",
            "incident": None,
            "member_states": ["BE"],
        }
        samples = [
            AuditRecord(
                action="retract",
                organisation=org,
                message_id="m-\u00e9\u20ac",
                decision=verdict,  # type: ignore[arg-type]  # the literals below
                decision_id=f"00000000-0000-4000-8000-00000000000{n}",
                time=datetime(2026, 1, 2, 3, 4, 5, 6000 * n, tzinfo=UTC),
                content_hash=bytes(range(32)),
                labels=labels,
                rule_ids=("r1", "r2"),
                legal_basis=("l",) * n,
                obligations=(),
                redacted_fields=("contact_email",),
                reasons=("why",) * 70,
                rejection_reason="replay" if verdict == "reject" else None,
                policy_bundle_hash="ab" * 32,
                thread="t-\u00e9",
                details={"topic": "jcu.civilian.indicators", "offset": "7"} if n else {},
            )
            for n, (org, verdict) in enumerate((("cert-eu", "redact"), ("enisa", "reject")))
        ]
        return self._encode_fast(samples) == self._store.encode(AUDIT_CONTENT, _as_avro(samples))

    def encode(self, records: AuditRecord | Sequence[AuditRecord]) -> bytes:
        """The leaf content (single-object bytes); MalformedRecord if the records do not fit."""
        if isinstance(records, AuditRecord):
            records = (records,)
        for record in records:
            decision_id = record.decision_id
            if type(decision_id) is not str or _is_canonical_uuid(decision_id) is None:
                _check_decision_id(decision_id)
        if self.fast and records:
            try:
                data = self._encode_fast(records)
            except UnicodeEncodeError:
                data = None
            if data is not None:
                return data
        self.fallbacks += 1
        return self._store.encode(AUDIT_CONTENT, _as_avro(records))

    def encode_set(
        self,
        decisions: DecisionSet,
        decision_ids: Sequence[str],
        *,
        ids_are_canonical: bool = False,
    ) -> bytes:
        """The leaf content of a DecisionSet, its decisions taking `decision_ids` (one each,
        in order): the bytes `encode` writes for `decisions.records(decision_ids)`.

        `ids_are_canonical`: the caller made the ids with `new_decision_ids`, so they
        need no checking."""
        if self.fast and decisions.decisions:
            try:
                data = self._encode_set_fast(decisions, decision_ids, ids_are_canonical)
            except UnicodeEncodeError:
                data = None
            if data is not None:
                return data
        try:
            records = decisions.records(decision_ids)
        except ValueError as exc:
            raise MalformedRecord(f"audit decisions: {exc}") from None
        return self.encode(records)

    def _encode_set_fast(
        self,
        decisions: DecisionSet,
        decision_ids: Sequence[str],
        ids_are_canonical: bool,
    ) -> bytes | None:
        if len(decision_ids) != len(decisions.decisions):
            return None
        parts = self._head(
            decisions.action,
            decisions.message_id,
            decisions.content_hash,
            decisions.labels,
            decisions.policy_bundle_hash,
            len(decision_ids),
        )
        time = self._time(decisions.time)
        if parts is None or time is None:
            return None
        tails = self._decision_tails(decisions.decisions)
        if tails is None:
            return None
        if not ids_are_canonical and any(
            type(i) is not str or _is_canonical_uuid(i) is None for i in decision_ids
        ):
            return None
        thread = _nullable_string(decisions.thread)
        if thread is None:
            return None
        parts += [
            _UUID_LENGTH + decision_id.encode() + time + tail
            for decision_id, tail in zip(decision_ids, tails, strict=True)
        ]
        parts += (_NULL, thread)  # the end of the records, then the thread
        return b"".join(parts)

    def encode_outcome(self, outcome: SendOutcome, decision_ids: Sequence[str]) -> bytes:
        """The leaf content of a send outcome, one record per recipient taking the ids in
        order: the bytes `encode` writes for `outcome.records(decision_ids)`, built per copy
        (what its recipients share is encoded once). `decision_ids` from `new_decision_ids`."""
        data = self._encode_outcome_fast(outcome, decision_ids) if self.fast else None
        if data is not None:
            return data
        try:
            records = outcome.records(decision_ids)
        except ValueError as exc:
            raise MalformedRecord(f"audit outcome: {exc}") from None
        return self.encode(records)

    def _encode_outcome_fast(
        self, outcome: SendOutcome, decision_ids: Sequence[str]
    ) -> bytes | None:
        if len(decision_ids) != outcome.count:
            return None
        parts = self._head("send", outcome.message_id, None, None, None, len(decision_ids))
        time = self._time(to_millis(outcome.time))
        if parts is None or time is None:
            return None
        ids = iter(decision_ids)
        for copy in outcome.copies:
            shared = [
                _string_array(copy.redacted_fields),
                _string_array((copy.reason,) if copy.reason else ()),
                _nullable_string(copy.error),
                _string_map(copy_details(copy)),
            ]
            if any(p is None for p in shared):
                return None
            verdict = _varint(_DECISIONS.index("sent" if copy.error is None else "unsent"))
            suffix = verdict + _NULL * 3 + b"".join(p for p in shared if p is not None)
            for org in copy.recipients:
                name = self._name(org)
                if name is None:
                    return None
                parts += (_UUID_LENGTH, next(ids).encode(), time, name, suffix)
        parts += (_NULL, _NULL)  # the end of the records, then no thread
        return b"".join(parts)

    def _decision_tails(self, decisions: Sequence[PolicyDecision]) -> list[bytes] | None:
        """Each decision's encoded organisation .. details, or None if one does not fit.
        The policy engine hands out the same Decision objects from its cache: they are
        cached by identity, the entry keeping the object alive so that an id is never
        confused with a dead object's."""
        last = self._last_tails
        if last is not None and last[0] is decisions:
            return last[1]  # the publisher hands one tuple to a batch's messages alike
        cache = self._by_decision
        tails = []
        for decision in decisions:
            entry = cache.get(id(decision))
            if entry is None or entry[0] is not decision:
                if decision.decision not in _POLICY_VERDICTS:
                    return None
                tail = self._encode_tail(
                    (
                        decision.org,
                        decision.decision,
                        tuple(decision.rules),
                        tuple(decision.legal_basis),
                        tuple(decision.obligations),
                        tuple(decision.redact_fields),
                        tuple(decision.reasons),
                        None,
                    ),
                    _NULL,
                )
                if tail is None:
                    return None
                if len(cache) >= _MAX_TAILS:
                    cache.clear()
                entry = cache[id(decision)] = (decision, tail)
            tails.append(entry[1])
        if type(decisions) is tuple:  # immutable, and held here: its id is not reused
            self._last_tails = (decisions, tails)
        return tails

    def _name(self, value: object) -> bytes | None:
        if type(value) is not str:
            return None
        data = self._names.get(value)
        if data is None:
            data = _string(value)
            if data is None:
                return None
            if len(self._names) >= _MAX_NAMES:
                self._names.clear()
            self._names[value] = data
        return data

    def _time(self, value: object) -> bytes | None:
        if type(value) is not datetime or value.tzinfo is not UTC:
            return None  # naive or other zones: fastavro's own conversion decides
        last, data = self._last_time
        if value != last:  # decisions of one message mostly share their millisecond
            delta = value - _EPOCH
            millis = (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
            data = _varint(millis)
            self._last_time = (value, data)
        return data

    def _labels(self, labels: object) -> bytes | None:
        if labels is None:
            return _NULL
        if not isinstance(labels, Mapping):
            return None
        last, snapshot, data = self._last_labels
        if (
            labels is last
            and labels == snapshot
            # 1 == True: equality alone would let an int pass for the boolean
            and type(labels.get("personal_data", False)) is bool
        ):
            return data
        encoded = _encode_labels(labels)
        if encoded is not None:
            self._last_labels = (labels, _snapshot(labels), encoded)
        return encoded

    def _tail(self, record: AuditRecord) -> bytes | None:
        """organisation, decision, the five string arrays, rejection_reason, details: as a
        policy engine's cached Decision repeats them, so are they cached (by value; records
        with details are encoded each time)."""
        details = _string_map(record.details)
        if details is None:
            return None
        key = (
            record.organisation,
            record.decision,
            record.rule_ids,
            record.legal_basis,
            record.obligations,
            record.redacted_fields,
            record.reasons,
            record.rejection_reason,
        )
        if details != _NULL:
            return self._encode_tail(key, details)
        try:
            data = self._tails.get(key)
        except TypeError:  # a list where a tuple belongs: encode, do not cache
            return self._encode_tail(key, details)
        if data is None:
            data = self._encode_tail(key, details)
            if data is None:
                return None
            if len(self._tails) >= _MAX_TAILS:
                self._tails.clear()
            self._tails[key] = data
        return data

    def _encode_tail(self, key: tuple[Any, ...], details: bytes) -> bytes | None:
        organisation, decision, *arrays, rejection_reason = key
        if type(decision) is not str or decision not in _DECISIONS:
            return None
        parts = [
            self._name(organisation),
            _varint(_DECISIONS.index(decision)),
            *(_string_array(a) for a in arrays),
            _nullable_string(rejection_reason),
            details,
        ]
        if any(p is None for p in parts):
            return None
        return b"".join(p for p in parts if p is not None)

    def _head(
        self,
        action: object,
        message_id: object,
        content_hash: object,
        labels: object,
        policy_bundle_hash: object,
        count: int,
    ) -> list[bytes] | None:
        """The content's fields before its records, and the records' count; None for
        anything outside what this encoder handles."""
        if type(action) is not str or action not in _ACTION_BYTES:
            return None
        if content_hash is None:
            content = _NULL
        elif type(content_hash) is bytes:
            content = _SOME + _length(len(content_hash)) + content_hash
        else:
            return None
        encoded_id = _string(message_id)
        encoded_labels = self._labels(labels)
        bundle = _nullable_string(policy_bundle_hash)
        if encoded_id is None or encoded_labels is None or bundle is None:
            return None
        return [
            self._header,
            _ACTION_BYTES[action],
            encoded_id,
            content,
            encoded_labels,
            bundle,
            _length(count),
        ]

    def _encode_fast(self, records: Sequence[AuditRecord]) -> bytes | None:
        """The content, or None for anything outside what this encoder handles."""
        first = records[0]
        parts = self._head(
            first.action,
            first.message_id,
            first.content_hash,
            first.labels,
            first.policy_bundle_hash,
            len(records),
        )
        thread = _nullable_string(first.thread)
        if parts is None or thread is None:
            return None
        for record in records:
            if record is not first and not can_share_leaf(record, first):
                return None  # the store's encoder (via _as_avro) says what is wrong
            decision_id = record.decision_id
            time = self._time(record.time)
            tail = self._tail(record)
            if type(decision_id) is not str or time is None or tail is None:
                return None
            parts += (_UUID_LENGTH, decision_id.encode(), time, tail)
        parts += (_NULL, thread)  # the end of the records, then the thread
        return b"".join(parts)


_encoders: weakref.WeakKeyDictionary[SchemaStore, LeafEncoder] = weakref.WeakKeyDictionary()


def leaf_encoder(store: SchemaStore) -> LeafEncoder:
    """The `LeafEncoder` of `store` (one per store, made on first use)."""
    encoder = _encoders.get(store)
    if encoder is None:
        encoder = _encoders[store] = LeafEncoder(store)
    return encoder


def encode_content(store: SchemaStore, records: AuditRecord | Sequence[AuditRecord]) -> bytes:
    """`records` (about one message) as one leaf's content."""
    return leaf_encoder(store).encode(records)


# -- the leaf on the topic: clear part + sealed content --------------------------------


@dataclass(frozen=True, slots=True)
class ClearLeaf:
    """What anyone who reads the topic sees of a leaf: where it sits, and its sealed content."""

    enforcement_point: str
    index: int
    previous_leaf_hash: bytes
    count: int
    salt: bytes
    #: The associated data of the sealed content: the leaf's bytes up to the content field.
    aad: bytes
    sealed: bytes


def leaf_prefix(
    header: bytes,
    enforcement_point: bytes,
    index: int,
    previous_leaf_hash: bytes,
    count: int,
    salt: bytes,
) -> bytes:
    """The leaf's bytes before its content field (`enforcement_point` already encoded)."""
    return b"".join(
        (
            header,
            enforcement_point,
            _varint(index),
            _length(len(previous_leaf_hash)),
            previous_leaf_hash,
            _varint(count),
            _length(len(salt)),
            salt,
        )
    )


class LeafSealer:
    """Writes one enforcement point's leaves: content sealed under its key, clear part bound."""

    def __init__(self, store: SchemaStore, enforcement_point: str, key: PointKey) -> None:
        try:
            self._header = SINGLE_OBJECT_MAGIC + store.fingerprint(AUDIT_LEAF)
        except UnknownSchema:
            raise AuditError(f"the schema store has no {AUDIT_LEAF}; check JCU_SCHEMAS") from None
        point = _string(enforcement_point)
        if point is None:
            raise AuditError(f"enforcement point {enforcement_point!r} is not a string")
        self._point = point
        self._key = key
        self.encoder = leaf_encoder(store)

    def seal(self, index: int, previous_leaf_hash: bytes, count: int, content: bytes) -> bytes:
        salt = new_salt()
        prefix = leaf_prefix(self._header, self._point, index, previous_leaf_hash, count, salt)
        sealed = self._key.seal_with(salt, prefix, content)
        return prefix + _length(len(sealed)) + sealed

    def leaf(
        self, index: int, previous_leaf_hash: bytes, records: AuditRecord | Sequence[AuditRecord]
    ) -> bytes:
        group = (records,) if isinstance(records, AuditRecord) else records
        return self.seal(index, previous_leaf_hash, len(group), self.encoder.encode(group))

    def leaf_of_set(
        self,
        index: int,
        previous_leaf_hash: bytes,
        dset: DecisionSet | SendOutcome,
        ids: Sequence[str],
    ) -> bytes:
        if isinstance(dset, SendOutcome):
            content = self.encoder.encode_outcome(dset, ids)
        else:
            content = self.encoder.encode_set(dset, ids, ids_are_canonical=True)
        return self.seal(index, previous_leaf_hash, len(ids), content)


def encode_leaf(
    store: SchemaStore,
    enforcement_point: str,
    index: int,
    previous_leaf_hash: bytes,
    records: AuditRecord | Sequence[AuditRecord],
    key: PointKey,
) -> bytes:
    """`records` (about one message) as leaf `index` of `enforcement_point`'s tree, chained
    to the previous leaf, its content sealed under `key`."""
    return LeafSealer(store, enforcement_point, key).leaf(index, previous_leaf_hash, records)


def read_long(data: bytes, pos: int, what: str = "audit leaf") -> tuple[int, int]:
    """The Avro long at `pos` of `what`, and where it ends; MalformedRecord if it is not one."""
    try:
        return decode_long(data, pos)
    except ValueError:
        raise MalformedRecord(f"{what} is truncated or holds a bad number") from None


def read_bytes(data: bytes, pos: int, what: str = "audit leaf") -> tuple[bytes, int]:
    """The Avro bytes value at `pos` of `what`, and where it ends; MalformedRecord if cut."""
    try:
        return decode_bytes(data, pos)
    except ValueError:
        raise MalformedRecord(f"{what} is truncated") from None


def parse_leaf(store: SchemaStore, data: bytes) -> ClearLeaf:
    """The clear part of one record of `jcu.audit.decisions` (MalformedRecord if not a leaf).

    Read by hand (the verifier reads every leaf); a leaf written with another
    version of the schema goes through the store and Avro's resolution.
    """
    header = SINGLE_OBJECT_MAGIC + store.fingerprint(AUDIT_LEAF)
    if not data.startswith(header):
        return _parse_leaf_by_store(store, data)
    pos = len(header)
    raw_point, pos = read_bytes(data, pos)
    index, pos = read_long(data, pos)
    previous, pos = read_bytes(data, pos)
    count, pos = read_long(data, pos)
    salt, pos = read_bytes(data, pos)
    aad_end = pos
    sealed, pos = read_bytes(data, pos)
    if pos != len(data):
        raise MalformedRecord("audit leaf has bytes after its content")
    try:
        point = raw_point.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRecord("audit leaf enforcement point is not UTF-8") from None
    return ClearLeaf(point, index, previous, count, salt, data[:aad_end], sealed)


def _parse_leaf_by_store(store: SchemaStore, data: bytes) -> ClearLeaf:
    _, leaf = store.decode(data, expected=AUDIT_LEAF)
    sealed = bytes(leaf["content"])
    suffix = len(_length(len(sealed))) + len(sealed)
    return ClearLeaf(
        leaf["enforcement_point"],
        int(leaf["index"]),
        bytes(leaf["previous_leaf_hash"]),
        int(leaf["decisions"]),
        bytes(leaf["salt"]),
        data[: len(data) - suffix],
        sealed,
    )


def _time(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise MalformedRecord("time is not a timestamp")
    return to_millis(value)


def decode_content(store: SchemaStore, content: bytes) -> tuple[AuditRecord, ...]:
    """The records of one opened leaf content."""
    _, leaf = store.decode(content, expected=AUDIT_CONTENT)
    labels: Mapping[str, Any] | None = leaf["labels"]
    if not leaf["records"]:
        raise MalformedRecord("audit leaf holds no record")
    try:
        return tuple(
            AuditRecord(
                action=leaf["action"],
                organisation=r["organisation"],
                message_id=leaf["message_id"],
                decision=r["decision"],
                decision_id=str(r["decision_id"]),
                time=_time(r["time"]),
                content_hash=leaf["content_hash"],
                labels=labels,
                rule_ids=tuple(r["rule_ids"]),
                legal_basis=tuple(r["legal_basis"]),
                obligations=tuple(r["obligations"]),
                redacted_fields=tuple(r["redacted_fields"]),
                reasons=tuple(r["reasons"]),
                rejection_reason=r["rejection_reason"],
                policy_bundle_hash=leaf["policy_bundle_hash"],
                thread=leaf.get("thread"),
                details=dict(r["details"]),
            )
            for r in leaf["records"]
        )
    except ValueError as exc:
        raise MalformedRecord(f"audit record: {exc}") from None


def open_leaf(store: SchemaStore, clear: ClearLeaf, leaf_key: bytes) -> tuple[AuditRecord, ...]:
    """The records of a leaf, opened with its own key (AuditError if it does not open)."""
    from broker.audit.keys import open_content

    records = decode_content(store, open_content(leaf_key, clear.aad, clear.sealed))
    if len(records) != clear.count:
        raise MalformedRecord(
            f"audit leaf {clear.index} says it holds {clear.count} records but holds {len(records)}"
        )
    return records


def decode_leaf(
    store: SchemaStore,
    data: bytes,
    *,
    keys: AuditKeys | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> LoggedLeaf:
    """One record of `jcu.audit.decisions`, opened if `keys` holds its enforcement point's
    key (MalformedRecord/UnknownSchema if it is not a leaf, AuditError if it does not open)."""
    clear = parse_leaf(store, data)
    records: tuple[AuditRecord, ...] = ()
    key = keys.point(clear.enforcement_point) if keys is not None else None
    if key is not None:
        records = open_leaf(store, clear, key.leaf_key(clear.salt))
    return LoggedLeaf(
        enforcement_point=clear.enforcement_point,
        index=clear.index,
        previous_leaf_hash=clear.previous_leaf_hash,
        records=records,
        data=bytes(data),
        leaf_hash=leaf_hash(data),
        partition=partition,
        offset=offset,
        count=clear.count,
        salt=clear.salt,
        opened=key is not None,
    )


# -- checkpoints and cosignatures -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A checkpoint as written to `jcu.audit.checkpoints`: the signed note, and the
    consistency proof from the enforcement point's previous checkpoint."""

    signed: SignedCheckpoint
    previous_size: int
    consistency: tuple[bytes, ...]


def encode_checkpoint(
    store: SchemaStore,
    signed: SignedCheckpoint,
    previous_size: int = 0,
    consistency: Sequence[bytes] = (),
) -> bytes:
    return store.encode(
        CHECKPOINT,
        {
            "note": signed.note(),
            "previous_size": previous_size,
            "consistency": list(consistency),
        },
    )


def decode_checkpoint(store: SchemaStore, data: bytes) -> CheckpointRecord:
    _, r = store.decode(data, expected=CHECKPOINT)
    previous = int(r["previous_size"])
    signed = SignedCheckpoint.parse(r["note"])
    proof = tuple(bytes(h) for h in r["consistency"])
    if previous < 0 or any(len(h) != 32 for h in proof):
        raise MalformedRecord("checkpoint record: a bad previous size or consistency proof")
    return CheckpointRecord(signed, previous, proof)


def encode_cosignature(store: SchemaStore, witness: str, signed: SignedCheckpoint) -> bytes:
    return store.encode(COSIGNATURE, {"witness": witness, "note": signed.note()})


def decode_cosignature(store: SchemaStore, data: bytes) -> tuple[str, SignedCheckpoint]:
    _, r = store.decode(data, expected=COSIGNATURE)
    return str(r["witness"]), SignedCheckpoint.parse(r["note"])
