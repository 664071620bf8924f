"""Audit leaves and checkpoints to and from their Avro single-object bytes.

A leaf (`eu.jcu.v1.AuditLeaf`) holds the decisions an enforcement point took
together about one message: what they share (action, message id, content
hash, labels, policy bundle hash, thread) once, then one `eu.jcu.v1.AuditRecord` per
decision. Checkpoints and decoding go through the schema store (fastavro).
Leaves are written for every published and received message, so
`LeafEncoder` writes them by hand: the Avro binary encoding of exactly the
schema it was written for, byte for byte what `SchemaStore.encode` writes,
with the parts that repeat (enforcement point, organisations, labels, the
policy's answer) encoded once and cached. Whatever it is not sure about
(another schema, an input type it does not handle) goes to
`SchemaStore.encode`, which also produces the errors: the two paths differ in
speed only.
"""

from __future__ import annotations

import re
import uuid
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from broker.audit.checkpoint import Checkpoint
from broker.audit.record import AuditRecord, DecisionSet, LoggedLeaf, PolicyDecision
from broker.clock import to_millis
from broker.errors import MalformedRecord, UnknownSchema
from broker.merkle import leaf_hash
from broker.schemas import SINGLE_OBJECT_MAGIC, SchemaStore

AUDIT_LEAF = "eu.jcu.v1.AuditLeaf"
AUDIT_RECORD = "eu.jcu.v1.AuditRecord"
CHECKPOINT = "eu.jcu.v1.Checkpoint"


def _array(items: Any) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _nullable(kind: Any) -> list[Any]:
    return ["null", kind]


def _enum(name: str, symbols: Sequence[str]) -> dict[str, Any]:
    return {"type": "enum", "name": name, "symbols": list(symbols)}


_ACTIONS: Final = ("publish", "receive", "forward")
_POLICY_VERDICTS: Final = frozenset(("allow", "redact", "deny"))  # what a policy answers
_DECISIONS: Final = ("allow", "redact", "deny", "reject")
_TLPS: Final = ("CLEAR", "GREEN", "AMBER", "AMBER_STRICT", "RED")
_HANDLING_CODES: Final = ("H0", "H1", "H2", "H3")
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
    ],
}
#: The stand-alone AuditLeaf schema (docs left out) the hand-written encoder
#: implements; any other schema (a field, a symbol or a default changed) gets
#: the schema store's encoder.
_WRITTEN_FOR: Final[dict[str, Any]] = {
    "type": "record",
    "name": "AuditLeaf",
    "namespace": "eu.jcu.v1",
    "fields": [
        {"name": "enforcement_point", "type": "string"},
        {"name": "index", "type": "long"},
        {"name": "previous_leaf_hash", "type": "bytes"},
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
_BYTE: Final = tuple(bytes((i,)) for i in range(128))
_NULL: Final = b"\x00"  # union branch 0 (null); also an empty array, false, long 0
_SOME: Final = b"\x02"  # union branch 1
_UUID_LENGTH: Final = b"\x48"  # 36, zig-zag
_TRUE, _FALSE = b"\x01", b"\x00"  # boolean: one byte
_ACTION_BYTES: Final = {a: bytes((2 * i,)) for i, a in enumerate(_ACTIONS)}  # enum: position
_LABEL_KEYS: Final = frozenset(_LABEL_FIELDS)
_UNSET: Final = object()  # "nothing cached yet": no record field is this object
#: Bounds of the caches; when one is full it starts over (cheap, and rare).
_MAX_NAMES, _MAX_TAILS = 1024, 4096


def _varint(n: int) -> bytes:
    """Avro long: zig-zag, then 7 bits a byte, least significant first."""
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return _BYTE[z]
    if z < 0x4000:  # leaf indices up to 8191
        return bytes((z & 0x7F | 0x80, z >> 7))
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


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


def _as_avro(
    enforcement_point: str,
    index: int,
    previous_leaf_hash: bytes,
    records: Sequence[AuditRecord],
) -> dict[str, Any]:
    """The leaf as the schema store's encoder takes it."""
    if not records:
        raise MalformedRecord("an audit leaf holds at least one decision")
    first = records[0]
    shared = _shared(first)
    if any(_shared(r) != shared for r in records[1:]):
        raise MalformedRecord(
            "the decisions of one audit leaf must share action, message id, content hash, "
            "labels, policy bundle hash and thread"
        )
    try:
        return {
            "enforcement_point": enforcement_point,
            "index": index,
            "previous_leaf_hash": previous_leaf_hash,
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
                for r in records
            ],
            "thread": first.thread,
        }
    except (TypeError, ValueError) as exc:  # labels not a mapping, a list field not iterable
        raise MalformedRecord(f"record does not match schema {AUDIT_LEAF}: {exc}") from None


def _shared(record: AuditRecord) -> tuple[Any, ...]:
    """What the decisions of one leaf have in common (stored once, in the leaf)."""
    return (
        record.action,
        record.message_id,
        record.content_hash,
        record.labels,
        record.policy_bundle_hash,
        record.thread,
    )


def can_share_leaf(a: AuditRecord, b: AuditRecord) -> bool:
    """Whether two decisions can go in one leaf: same action, message, content, labels, policy
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
    """Audit leaves of one schema store, each byte-identical to `store.encode(AUDIT_LEAF, ...)`.

    Hold one per store (`encode_leaf` keeps one per store for you). Not meant
    to be shared between threads without a lock: its caches are plain dicts.
    """

    def __init__(self, store: SchemaStore) -> None:
        self._store = store
        self._header = b""
        #: Whether the hand-written encoder is in use (the store has the schema it was written for).
        self.fast = False
        #: Leaves that went to `store.encode` (all of them when not `fast`): a figure to watch.
        self.fallbacks = 0
        try:
            schema = store.schema(AUDIT_LEAF)
        except UnknownSchema:
            return  # store.encode says so, leaf by leaf
        self._header = SINGLE_OBJECT_MAGIC + store.fingerprint(AUDIT_LEAF)
        self._names: dict[str, bytes] = {}  # enforcement points and organisations
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
                action="forward",
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
            )
            for n, (org, verdict) in enumerate((("cert-eu", "redact"), ("enisa", "reject")))
        ]
        args = ("ep/publish", 300, bytes(32), samples)
        return self._encode_fast(*args) == self._store.encode(AUDIT_LEAF, _as_avro(*args))

    def encode(
        self,
        enforcement_point: str,
        index: int,
        previous_leaf_hash: bytes,
        records: AuditRecord | Sequence[AuditRecord],
    ) -> bytes:
        """The leaf data (single-object bytes); MalformedRecord if the records do not fit."""
        if isinstance(records, AuditRecord):
            records = (records,)
        for record in records:
            decision_id = record.decision_id
            if type(decision_id) is not str or _is_canonical_uuid(decision_id) is None:
                _check_decision_id(decision_id)
        if self.fast and records:
            try:
                data = self._encode_fast(enforcement_point, index, previous_leaf_hash, records)
            except UnicodeEncodeError:
                data = None
            if data is not None:
                return data
        self.fallbacks += 1
        return self._store.encode(
            AUDIT_LEAF, _as_avro(enforcement_point, index, previous_leaf_hash, records)
        )

    def encode_set(
        self,
        enforcement_point: str,
        index: int,
        previous_leaf_hash: bytes,
        decisions: DecisionSet,
        decision_ids: Sequence[str],
        *,
        ids_are_canonical: bool = False,
    ) -> bytes:
        """The leaf of a DecisionSet, its decisions taking `decision_ids` (one each, in order):
        the bytes `encode` writes for `decisions.records(decision_ids)`.

        `ids_are_canonical`: the caller made the ids with `new_decision_ids`, so they
        need no checking."""
        if self.fast and decisions.decisions:
            try:
                data = self._encode_set_fast(
                    enforcement_point,
                    index,
                    previous_leaf_hash,
                    decisions,
                    decision_ids,
                    ids_are_canonical,
                )
            except UnicodeEncodeError:
                data = None
            if data is not None:
                return data
        try:
            records = decisions.records(decision_ids)
        except ValueError as exc:
            raise MalformedRecord(f"audit decisions: {exc}") from None
        return self.encode(enforcement_point, index, previous_leaf_hash, records)

    def _encode_set_fast(
        self,
        enforcement_point: str,
        index: int,
        previous_leaf_hash: bytes,
        decisions: DecisionSet,
        decision_ids: Sequence[str],
        ids_are_canonical: bool,
    ) -> bytes | None:
        if len(decision_ids) != len(decisions.decisions):
            return None
        parts = self._head(
            enforcement_point,
            index,
            previous_leaf_hash,
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

    def _decision_tails(self, decisions: Sequence[PolicyDecision]) -> list[bytes] | None:
        """Each decision's encoded organisation .. rejection_reason, or None if one does not
        fit. The policy engine hands out the same Decision objects from its cache: they are
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
                    )
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
        """organisation, decision, the five string arrays, rejection_reason: as a policy
        engine's cached Decision repeats them, so are they cached (by value)."""
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
        try:
            data = self._tails.get(key)
        except TypeError:  # a list where a tuple belongs: encode, do not cache
            return self._encode_tail(key)
        if data is None:
            data = self._encode_tail(key)
            if data is None:
                return None
            if len(self._tails) >= _MAX_TAILS:
                self._tails.clear()
            self._tails[key] = data
        return data

    def _encode_tail(self, key: tuple[Any, ...]) -> bytes | None:
        organisation, decision, *arrays, rejection_reason = key
        if type(decision) is not str or decision not in _DECISIONS:
            return None
        parts = [
            self._name(organisation),
            _BYTE[2 * _DECISIONS.index(decision)],
            *(_string_array(a) for a in arrays),
            _nullable_string(rejection_reason),
        ]
        if any(p is None for p in parts):
            return None
        return b"".join(p for p in parts if p is not None)

    def _head(
        self,
        enforcement_point: str,
        index: int,
        previous_leaf_hash: bytes,
        action: object,
        message_id: object,
        content_hash: object,
        labels: object,
        policy_bundle_hash: object,
        count: int,
    ) -> list[bytes] | None:
        """The leaf's fields before its records, and the records' count; None for anything
        outside what this encoder handles."""
        if (
            type(index) is not int
            or not _LONG_MIN <= index <= _LONG_MAX
            or type(previous_leaf_hash) is not bytes
            or type(action) is not str
            or action not in _ACTION_BYTES
        ):
            return None
        if content_hash is None:
            content = _NULL
        elif type(content_hash) is bytes:
            content = _SOME + _length(len(content_hash)) + content_hash
        else:
            return None
        point = self._name(enforcement_point)
        encoded_id = _string(message_id)
        encoded_labels = self._labels(labels)
        bundle = _nullable_string(policy_bundle_hash)
        if point is None or encoded_id is None or encoded_labels is None or bundle is None:
            return None
        return [
            self._header,
            point,
            _varint(index),
            _length(len(previous_leaf_hash)),
            previous_leaf_hash,
            _ACTION_BYTES[action],
            encoded_id,
            content,
            encoded_labels,
            bundle,
            _length(count),
        ]

    def _encode_fast(
        self,
        enforcement_point: str,
        index: int,
        previous_leaf_hash: bytes,
        records: Sequence[AuditRecord],
    ) -> bytes | None:
        """The leaf, or None for anything outside what this encoder handles."""
        first = records[0]
        parts = self._head(
            enforcement_point,
            index,
            previous_leaf_hash,
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


def encode_leaf(
    store: SchemaStore,
    enforcement_point: str,
    index: int,
    previous_leaf_hash: bytes,
    records: AuditRecord | Sequence[AuditRecord],
) -> bytes:
    """`records` (decisions about one message) as leaf `index` of `enforcement_point`'s tree,
    chained to the previous leaf."""
    return leaf_encoder(store).encode(enforcement_point, index, previous_leaf_hash, records)


def _time(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise MalformedRecord("time is not a timestamp")
    return to_millis(value)


def decode_leaf(
    store: SchemaStore, data: bytes, *, partition: int | None = None, offset: int | None = None
) -> LoggedLeaf:
    """Decode one record of `jcu.audit.decisions` (MalformedRecord/UnknownSchema if not one)."""
    _, leaf = store.decode(data, expected=AUDIT_LEAF)
    labels: Mapping[str, Any] | None = leaf["labels"]
    if not leaf["records"]:
        raise MalformedRecord("audit leaf holds no decision")
    try:
        records = tuple(
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
            )
            for r in leaf["records"]
        )
    except ValueError as exc:
        raise MalformedRecord(f"audit record: {exc}") from None
    return LoggedLeaf(
        enforcement_point=leaf["enforcement_point"],
        index=int(leaf["index"]),
        previous_leaf_hash=bytes(leaf["previous_leaf_hash"]),
        records=records,
        data=bytes(data),
        leaf_hash=leaf_hash(data),
        partition=partition,
        offset=offset,
    )


def encode_checkpoint(store: SchemaStore, checkpoint: Checkpoint) -> bytes:
    return store.encode(
        CHECKPOINT,
        {
            "origin": checkpoint.origin,
            "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash,
            "time": checkpoint.time,
            "key_id": checkpoint.key_id,
            "signature": checkpoint.signature,
        },
    )


def decode_checkpoint(store: SchemaStore, data: bytes) -> Checkpoint:
    _, r = store.decode(data, expected=CHECKPOINT)
    return Checkpoint(
        origin=r["origin"],
        tree_size=int(r["tree_size"]),
        root_hash=bytes(r["root_hash"]),
        time=_time(r["time"]),
        key_id=r["key_id"],
        signature=bytes(r["signature"]),
    )
