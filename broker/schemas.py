"""The Avro schema store: every `schemas/*.avsc`, their fingerprints, single-object encoding.

Payloads are written with Avro single-object encoding (`C3 01`, the 8-byte
little-endian CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form,
then the binary body), so any Avro library can decode them once it knows the
schema. Named types may be defined in one file and used in another
(`eu.jcu.v1.Contact`); the store inlines them so each schema stands alone,
which is what the canonical form and other Avro implementations need.

Schema evolution: `decode` reads with the store's current schema of a type as
the reader schema and the writer schema found by fingerprint. A writer schema
the store does not hold as a file (an older or newer version) can be made
known with `add_writer_schema`; Avro's resolution rules do the rest.

Previous versions (`previous/*.avsc` beside the current ones, stand-alone) are
loaded that way: bytes written with an older version of a type still decode,
resolved into the current one (new fields take their defaults).

Legacy schemas (`legacy/*.avsc`, stand-alone) are the exception: an older
format that is still read but whose meaning differs from the current
version's (envelope format version 1). Bytes written with one decode with
that very schema, never resolved into the current schema of the same name,
and the caller dispatches on what it got.
"""

from __future__ import annotations

import copy
import functools
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema

from broker.errors import ConfigError, MalformedRecord, UnknownSchema

NAMESPACE = "eu.jcu.v1"
#: Sub-directory of a schema directory holding legacy (read-only, unresolved) schemas.
LEGACY_DIR = "legacy"
#: Sub-directory holding earlier versions of current types (read, resolved to the current).
PREVIOUS_DIR = "previous"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
#: Custom field attribute marking a field as carrying personal data.
PERSONAL_DATA_ATTRIBUTE = "jcu.personal_data"
#: Custom record attributes: the workflow (a conversation with a state machine) a type
#: is a step of, and the field naming the conversation (its thread) a message belongs to.
WORKFLOW_ATTRIBUTE = "jcu.workflow"
THREAD_ATTRIBUTE = "jcu.thread"
_HEADER_LEN = len(SINGLE_OBJECT_MAGIC) + 8
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})


@dataclass(frozen=True, slots=True)
class Workflow:
    """A payload type's place in a workflow, as its schema declares it.

    Messages of one thread are keyed by it on Kafka (so they stay in order on one
    partition) and carry it into the audit log (so a thread's story can be found
    without its content). Enforcement points deliver or publish a workflow's
    messages only with that workflow's checks in place.
    """

    name: str
    thread_field: str

    def thread_of(self, record: Mapping[str, Any]) -> str:
        return str(record[self.thread_field])


@dataclass(frozen=True, slots=True)
class _Entry:
    full_name: str
    raw: dict[str, Any]  # as written in the file (keeps custom attributes)
    standalone: dict[str, Any]  # named types from other files inlined
    parsed: Any  # fastavro's parsed schema
    fingerprint: bytes
    #: A legacy schema: bytes written with it decode with it, not with the current version.
    as_written: bool = False


def _full_name(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _collect_named(schema: Any, namespace: str | None, out: dict[str, dict[str, Any]]) -> None:
    """Every named type defined anywhere inside `schema`, by full name."""
    if isinstance(schema, list):
        for branch in schema:
            _collect_named(branch, namespace, out)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in _NAMED_KINDS:
        ns = schema.get("namespace", namespace)
        full = _full_name(schema["name"], ns)
        out[full] = schema
        namespace = full.rpartition(".")[0] or None
        for f in schema.get("fields", ()):
            _collect_named(f["type"], namespace, out)
    elif kind == "array":
        _collect_named(schema["items"], namespace, out)
    elif kind == "map":
        _collect_named(schema["values"], namespace, out)
    elif isinstance(kind, dict | list):
        _collect_named(kind, namespace, out)


def _inline(
    schema: Any,
    namespace: str | None,
    defined: set[str],
    library: Mapping[str, dict[str, Any]],
) -> Any:
    """Replace the first reference to each named type from another file by its definition."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return schema
        full = _full_name(schema, namespace)
        if full in defined:
            return full
        if full not in library:
            raise ConfigError(f"schema refers to unknown type {schema!r}")
        definition = copy.deepcopy(library[full])
        definition.setdefault("namespace", full.rpartition(".")[0])
        return _inline(definition, namespace, defined, library)
    if isinstance(schema, list):
        return [_inline(b, namespace, defined, library) for b in schema]
    if not isinstance(schema, dict):
        raise ConfigError(f"not an Avro schema: {schema!r}")
    kind = schema.get("type")
    out = dict(schema)
    if kind in _NAMED_KINDS:
        full = _full_name(schema["name"], schema.get("namespace", namespace))
        defined.add(full)
        inner_ns = full.rpartition(".")[0] or None
        if "fields" in schema:
            out["fields"] = [
                {**f, "type": _inline(f["type"], inner_ns, defined, library)}
                for f in schema["fields"]
            ]
    elif kind == "array":
        out["items"] = _inline(schema["items"], namespace, defined, library)
    elif kind == "map":
        out["values"] = _inline(schema["values"], namespace, defined, library)
    else:
        out["type"] = _inline(kind, namespace, defined, library)
    return out


#: CRC-64-AVRO's empty value and polynomial (the Avro specification's schema fingerprint).
_CRC_64_AVRO_EMPTY = 0xC15D213AA4D7A795


@functools.cache
def _crc_64_avro_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC_64_AVRO_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


def crc_64_avro(data: bytes) -> bytes:
    """The CRC-64-AVRO fingerprint of `data`, little-endian: the order single-object
    encoding puts on the wire (as fastavro's and the avro library's do). fastavro's own
    rebuilds its table on every call: that was half the store's load, on every verb's start."""
    table = _crc_64_avro_table()
    fp = _CRC_64_AVRO_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def _fingerprint(standalone: dict[str, Any]) -> bytes:
    canonical = fastavro.schema.to_parsing_canonical_form(standalone)
    return crc_64_avro(canonical.encode("utf-8"))


def _make_entry(
    raw: dict[str, Any], library: Mapping[str, dict[str, Any]], *, as_written: bool = False
) -> _Entry:
    full = _full_name(raw["name"], raw.get("namespace"))
    standalone = _inline(raw, raw.get("namespace"), set(), library)
    try:
        parsed = fastavro.parse_schema(copy.deepcopy(standalone))
    except (fastavro.schema.SchemaParseException, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"schema {full}: {exc}") from None
    return _Entry(full, raw, standalone, parsed, _fingerprint(standalone), as_written)


class SchemaStore:
    """The payload and envelope schemas, addressable by short name, full name or fingerprint."""

    def __init__(self, entries: Mapping[str, _Entry]) -> None:
        self._by_name: dict[str, _Entry] = dict(entries)
        self._by_fingerprint: dict[bytes, _Entry] = {e.fingerprint: e for e in entries.values()}
        self._workflows: dict[str, Workflow | None] = {}  # asked per message: kept

    @classmethod
    def load(cls, directory: Path) -> SchemaStore:
        """Load every `*.avsc` in `directory`; named types resolve across files.

        Then every `previous/*.avsc` (if any) as an earlier writer version of a
        current type (`add_writer_schema`), and every `legacy/*.avsc` (if any) as a
        legacy writer schema (`add_writer_schema(..., legacy=True)`): each must stand alone, so that
        a change to a current file can never change a frozen format.
        """
        files = sorted(Path(directory).glob("*.avsc"))
        if not files:
            raise ConfigError(f"no Avro schemas (*.avsc) in {directory}; set JCU_SCHEMAS")
        raws: list[dict[str, Any]] = []
        library: dict[str, dict[str, Any]] = {}
        for path in files:
            raw = _read_schema_file(path)
            raws.append(raw)
            _collect_named(raw, raw.get("namespace"), library)
        entries = {}
        for raw in raws:
            entry = _make_entry(raw, library)
            entries[entry.full_name] = entry
        store = cls(entries)
        for path in sorted((Path(directory) / PREVIOUS_DIR).glob("*.avsc")):
            raw = _read_schema_file(path)
            try:
                store.add_writer_schema(raw)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc} (a previous version must stand alone)") from None
        for path in sorted((Path(directory) / LEGACY_DIR).glob("*.avsc")):
            raw = _read_schema_file(path)
            try:
                store.add_writer_schema(raw, legacy=True)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc} (a legacy schema must stand alone)") from None
        return store

    def _entry(self, name: str) -> _Entry:
        entry = self._by_name.get(name) or self._by_name.get(_full_name(name, NAMESPACE))
        if entry is None:
            raise UnknownSchema(f"unknown schema {name!r}; known: {', '.join(self.names())}")
        return entry

    def names(self) -> tuple[str, ...]:
        """Short names of the top-level schemas, sorted: ("AssistanceRequest", ...)."""
        return tuple(sorted(n.rpartition(".")[2] for n in self._by_name))

    def full_name(self, name: str) -> str:
        return self._entry(name).full_name

    def schema(self, name: str) -> dict[str, Any]:
        """The stand-alone schema (named types inlined) as a JSON-ready dict."""
        return copy.deepcopy(self._entry(name).standalone)

    def parsed(self, name: str) -> Any:
        """fastavro's parsed form, for callers that read or write with fastavro directly."""
        return self._entry(name).parsed

    def fingerprint(self, name: str) -> bytes:
        """8-byte CRC-64-AVRO fingerprint (little-endian) of the Parsing Canonical Form."""
        return self._entry(name).fingerprint

    def personal_data_fields(self, name: str) -> tuple[str, ...]:
        """Top-level fields marked `"jcu.personal_data": true` in the schema file."""
        raw = self._entry(name).raw
        return tuple(f["name"] for f in raw.get("fields", ()) if f.get(PERSONAL_DATA_ATTRIBUTE))

    def workflow(self, name: str) -> Workflow | None:
        """The workflow `name` is a step of (`"jcu.workflow"`, `"jcu.thread"`), or None."""
        if name in self._workflows:
            return self._workflows[name]
        flow = self._workflow(name)
        self._workflows[name] = flow
        return flow

    def _workflow(self, name: str) -> Workflow | None:
        raw = self._entry(name).raw
        flow, thread = raw.get(WORKFLOW_ATTRIBUTE), raw.get(THREAD_ATTRIBUTE)
        if not flow:
            return None
        if not thread or thread not in {f["name"] for f in raw.get("fields", ())}:
            raise ConfigError(
                f"schema {name}: {WORKFLOW_ATTRIBUTE} needs {THREAD_ATTRIBUTE} naming a field"
            )
        return Workflow(str(flow), str(thread))

    def has_personal_data(self, name: str, record: Mapping[str, Any]) -> bool:
        """Whether any field the schema marks as personal data is filled in `record`."""
        return any(record.get(f) not in (None, [], "", {}) for f in self.personal_data_fields(name))

    def add_writer_schema(self, schema: Mapping[str, Any], *, legacy: bool = False) -> bytes:
        """Make another version of a type decodable (as a writer schema); returns its fingerprint.

        The schema must be stand-alone. The current version stays the one used
        for `encode` and as the reader schema; with `legacy`, bytes written with
        this schema decode with this very schema instead (a format still read
        whose fields mean something else than the current version's).
        """
        raw = copy.deepcopy(dict(schema))
        library: dict[str, dict[str, Any]] = {}
        _collect_named(raw, raw.get("namespace"), library)
        entry = _make_entry(raw, library, as_written=legacy)
        self._by_fingerprint.setdefault(entry.fingerprint, entry)
        return entry.fingerprint

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Avro single-object encoding of `record` with the current schema of `name`."""
        entry = self._entry(name)
        buf = io.BytesIO()
        buf.write(SINGLE_OBJECT_MAGIC)
        buf.write(entry.fingerprint)
        try:
            fastavro.schemaless_writer(buf, entry.parsed, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise MalformedRecord(
                f"record does not match schema {entry.full_name}: {exc}"
            ) from None
        return buf.getvalue()

    def decode(self, data: bytes, expected: str | None = None) -> tuple[str, dict[str, Any]]:
        """Decode single-object bytes; returns (full name, record).

        Raises UnknownSchema for a fingerprint the store does not know (or not of
        the `expected` type) and MalformedRecord for bytes that do not decode.
        """
        if len(data) < _HEADER_LEN or data[:2] != SINGLE_OBJECT_MAGIC:
            raise MalformedRecord("not Avro single-object encoding (missing C3 01 header)")
        fp = bytes(data[2:_HEADER_LEN])
        writer = self._by_fingerprint.get(fp)
        if writer is None:
            raise UnknownSchema(f"no schema with fingerprint {fp.hex()}")
        reader = writer if writer.as_written else self._by_name.get(writer.full_name, writer)
        if expected is not None and self._entry(expected).full_name != writer.full_name:
            raise UnknownSchema(f"expected {expected}, got {writer.full_name}")
        buf = io.BytesIO(data[_HEADER_LEN:])
        try:
            record = fastavro.schemaless_reader(buf, writer.parsed, reader.parsed)
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise MalformedRecord(
                f"{writer.full_name} does not decode: {type(exc).__name__}"
            ) from None
        if buf.tell() != len(data) - _HEADER_LEN:
            raise MalformedRecord(f"{writer.full_name}: trailing bytes after the record")
        if not isinstance(record, dict):
            raise MalformedRecord(f"{writer.full_name} is not a record")
        return writer.full_name, record


def _read_schema_file(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON schema: {exc}") from None
    if not isinstance(raw, dict) or raw.get("type") not in _NAMED_KINDS:
        raise ConfigError(f"{path}: top level must be a named Avro type")
    return raw


@functools.lru_cache(maxsize=4)
def _store_for(directory: Path) -> SchemaStore:
    return SchemaStore.load(directory)


def default_store() -> SchemaStore:
    """The store for `broker.config.load().schemas`, built on first call for that directory."""
    from broker import config

    return _store_for(config.load().schemas.resolve())
