"""Decoding received envelopes of one sender batch without a full Avro decode of each.

Envelopes sealed together (`Sealer.seal_many`) differ only in message id, nonce,
ciphertext and signature (`_wire.split_template`): the bytes between the message
id and the nonce, the "middle", repeat. Avro binary decoding is a deterministic
function of the bytes from a position and every field is self-delimiting, so
after the same head, the same middle bytes decode to the same fields and end at
the same place: fields decoded once stand for every later copy. Only the varying
fields are parsed here, strictly (canonical varints, exact bounds, a canonical
UUID); whatever this parser does not take goes to the full decode, which also
decides how it fails.

Where a middle ends is cut from a full decode by the canonical lengths of the
fields after it, which a crafted envelope with overlong varints can fool; so a
middle is used only once it decodes on its own to exactly its length (checked
when another envelope brings it, so envelopes that share nothing never pay for
it). The header stays UNVERIFIED, as with `decode_envelope`: the Opener checks
the signature over the bytes as received.
"""

from __future__ import annotations

import io
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import fastavro

from broker.avro_binary import decode_canonical_length as _length
from broker.avro_binary import encode_long
from broker.envelope import _batch_sig
from broker.envelope.header import DecodedEnvelope, EnvelopeHeader, decode_envelope
from broker.schemas import SINGLE_OBJECT_MAGIC, SchemaStore

#: A message id the fast path takes: str(uuid.UUID(x)) == x, so fastavro's uuid
#: logical type and the header agree without asking; other forms are decoded in full.
_CANONICAL_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_LEN = encode_long(36)  # length prefix of a canonical UUID string
_ID_LEN = len(_UUID_LEN) + 36
#: Longest length varint parsed here (lengths below 2**34); anything longer declines.
_MAX_VARINT = 5
#: The fields around the middle, as the layout needs them (checked against the schema).
_LEADING = (("version", "int"), ("message_id", {"type": "string", "logicalType": "uuid"}))
_TRAILING = (("nonce", "bytes"), ("ciphertext", "bytes"), ("signature", "bytes"))
_HEADER_FIELDS = tuple(f.name for f in fields(EnvelopeHeader))
_ID_AT = _HEADER_FIELDS.index("message_id")
#: The header's constructor, called with its fields in order (half of `dataclasses.replace`).
_new_header: Callable[..., EnvelopeHeader] = EnvelopeHeader
_CONTAINERS = (dict, list)


class _Decline(Exception):
    """The fast path does not take these bytes (the full decode will)."""


@dataclass(slots=True)
class _Template:
    """A head and middle seen in a full decode; usable once `fields` is set."""

    head: bytes
    middle: bytes
    version: int
    #: The header of the envelope it was cut from (immutable, so shared).
    header: EnvelopeHeader
    #: The middle's fields in schema order, decoded on their own; never handed out.
    fields: dict[str, Any] | None = None
    #: Fields holding dicts or lists and how to copy them: per decode, so that no
    #: caller can change `fields` through a record it was given.
    copiers: tuple[tuple[str, Callable[[Any], Any]], ...] = ()
    before_id: tuple[Any, ...] = ()
    after_id: tuple[Any, ...] = ()
    #: The middle did not decode to exactly its length: never used.
    refused: bool = False
    #: Where the middle starts: after the head and a canonical UUID string.
    middle_at: int = field(init=False)

    def __post_init__(self) -> None:
        self.middle_at = len(self.head) + _ID_LEN


def _thaw(value: Any) -> Any:
    """A copy of nested dicts and lists (what fastavro builds), sharing only immutable leaves."""
    if type(value) is dict:
        return {k: _thaw(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    return [_thaw(v) if type(v) in _CONTAINERS else v for v in value]


def _copy_flat_dicts(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item.copy() for item in value]


def _copier(value: Any) -> Callable[[Any], Any] | None:
    """How to copy `value` (a decoded field) so that the copy shares no dict or list
    with it: planned once for a template's own values, so copying is a few C calls
    (a tenth of `copy.deepcopy`, a fifth of `_thaw`). None: nothing to copy."""
    if type(value) is list:
        if not any(type(v) in _CONTAINERS for v in value):
            return list.copy
        if all(type(v) is dict and _copier(v) is dict.copy for v in value):
            return _copy_flat_dicts
        return _thaw
    if type(value) is dict:
        inner = {k: c for k, v in value.items() if (c := _copier(v)) is not None}
        if not inner:
            return dict.copy

        def copy_dict(d: dict[str, Any]) -> dict[str, Any]:
            out = d.copy()
            for k, copy in inner.items():
                out[k] = copy(out[k])
            return out

        return copy_dict
    return None


def _middle_schema(store: SchemaStore) -> Any:
    """fastavro's parsed schema of the fields between message_id and nonce, or None if
    the envelope schema does not have the layout `_wire` relies on."""
    schema = store.schema("Envelope")
    outer = [(f["name"], f["type"]) for f in schema["fields"]]
    if tuple(outer[:2]) != _LEADING or tuple(outer[-3:]) != _TRAILING:
        return None
    middle = {
        "type": "record",
        "name": "EnvelopeMiddle",
        "namespace": schema.get("namespace"),
        "fields": schema["fields"][2:-3],
    }
    return fastavro.parse_schema(middle)


class EnvelopeReader:
    """`decode_envelope` for one receiver, fast for envelopes whose middle it has seen.

    Keeps the `templates` most recently used middles (one per variant in a sender's
    batch: sender, topic, TLP and exercise flag, recipients, content key, times; the
    other labels are inside the ciphertext and vary freely). Format 1 envelopes (another
    schema fingerprint) always get the full decode. Not thread-safe.
    """

    def __init__(self, store: SchemaStore, templates: int = 8) -> None:
        if templates < 1:
            raise ValueError("an EnvelopeReader needs room for at least one template")
        self._store = store
        self._magic_fp = SINGLE_OBJECT_MAGIC + store.fingerprint("Envelope")
        self._middle_schema = _middle_schema(store)
        self._max = templates
        self._templates: OrderedDict[tuple[bytes, bytes], _Template] = OrderedDict()
        #: Decodes answered from a template (for tests and metrics).
        self.fast_hits = 0

    def decode(self, data: bytes) -> DecodedEnvelope:
        """What `decode_envelope(store, data)` returns (or raises), equal in every field."""
        if self._templates and type(data) is bytes:
            try:
                fast = self._fast(data)
            except (_Decline, IndexError, ValueError):
                fast = None
            if fast is not None:
                return fast
        decoded = decode_envelope(self._store, data)
        self._learn(data, decoded)
        return decoded

    def _match(self, data: bytes) -> tuple[_Template, dict[str, Any]] | None:
        """The template whose head and middle `data` has, and the middle's fields."""
        for t in reversed(self._templates.values()):  # most recently used first
            if not (data.startswith(t.middle, t.middle_at) and data.startswith(t.head)):
                continue
            if t.refused:
                continue
            middle_fields = t.fields if t.fields is not None else self._verify(t)
            if middle_fields is not None:
                return t, middle_fields
        return None

    def _fast(self, data: bytes) -> DecodedEnvelope | None:
        """The decode from a template; None if none matches, _Decline for odd bytes."""
        match = self._match(data)
        if match is None:
            return None
        t, middle_fields = match
        at = len(t.head)
        if not data.startswith(_UUID_LEN, at) or not _CANONICAL_UUID.fullmatch(
            data, at + len(_UUID_LEN), at + _ID_LEN
        ):
            raise _Decline
        message_id = data[at + len(_UUID_LEN) : at + _ID_LEN].decode("ascii")
        end = len(data)
        size, pos = _length(data, t.middle_at + len(t.middle), _MAX_VARINT)
        if pos + size > end:
            raise _Decline
        nonce = data[pos : pos + size]
        size, pos = _length(data, pos + size, _MAX_VARINT)
        if pos + size > end:
            raise _Decline
        ciphertext = data[pos : pos + size]
        size, pos = _length(data, pos + size, _MAX_VARINT)
        if pos + size != end:
            raise _Decline
        signature = data[pos:]

        record = {
            "version": t.version,
            "message_id": uuid.UUID(message_id),
            **middle_fields,
            "nonce": nonce,
            "ciphertext": ciphertext,
            "signature": signature,
        }
        for name, copy in t.copiers:
            record[name] = copy(record[name])
        header = _new_header(*t.before_id, message_id, *t.after_id)
        self._templates.move_to_end((t.head, t.middle))
        self.fast_hits += 1
        return DecodedEnvelope(data, record, header)

    def _verify(self, t: _Template) -> dict[str, Any] | None:
        """Decode a middle on its own, the first time it is seen again; None if it
        does not decode to exactly its length (then it is never used)."""
        buf = io.BytesIO(t.middle)
        try:
            decoded = fastavro.schemaless_reader(buf, self._middle_schema, self._middle_schema)
        except Exception:  # fastavro raises many types on corrupt input
            decoded = None
        if not isinstance(decoded, dict) or buf.tell() != len(t.middle):
            t.refused = True
            return None
        values = tuple(getattr(t.header, name) for name in _HEADER_FIELDS)
        t.copiers = tuple((k, copy) for k, v in decoded.items() if (copy := _copier(v)) is not None)
        t.before_id, t.after_id = values[:_ID_AT], values[_ID_AT + 1 :]
        t.fields = decoded
        return decoded

    def _learn(self, data: bytes, decoded: DecodedEnvelope) -> None:
        """Remember the head and middle of envelope bytes just decoded in full.

        Only from an envelope of a batch of several: a single one is signed alone
        ("ed25519") and has a `created` of its own, so no other shares its middle.
        Cheap (no decoding): `_verify` decodes a middle if another envelope brings it.
        """
        rec = decoded.record
        if (
            rec["signature_algorithm"] != _batch_sig.ALGORITHM
            or self._middle_schema is None
            or type(data) is not bytes
            or not data.startswith(self._magic_fp)
            or rec["version"] < 0
        ):
            return
        version = encode_long(rec["version"])
        head_len = 10 + len(version)
        # Canonical encodings found in place end where the fields do (the last byte
        # of a varint is the first without the continuation bit); str(UUID) has 36 chars.
        if not (
            data.startswith(version, 10)
            and data.startswith(_UUID_LEN, head_len)
            and data.startswith(decoded.header.message_id.encode(), head_len + len(_UUID_LEN))
        ):
            return
        id_end = head_len + _ID_LEN
        middle_end = len(data) - sum(
            len(encode_long(len(rec[name]))) + len(rec[name])
            for name in ("nonce", "ciphertext", "signature")
        )
        if middle_end <= id_end:
            return
        key = (data[:head_len], data[id_end:middle_end])
        if key in self._templates:
            self._templates.move_to_end(key)
            return
        self._templates[key] = _Template(*key, version=rec["version"], header=decoded.header)
        if len(self._templates) > self._max:
            self._templates.popitem(last=False)
