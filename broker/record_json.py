"""Records as people write them in JSON, and back: times as ISO 8601, UUIDs as strings.

fastavro wants `datetime` objects for `timestamp-millis` fields and returns
`datetime` and `UUID` objects when reading; JSON has neither. These two
schema-directed conversions sit between a JSON file and the schema store.
(Avro's own JSON encoding wraps union values as {"string": ...}, which is not
what an analyst writes, so it is not used here.)
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from broker.errors import MalformedRecord
from broker.schemas import SchemaStore

_TIMESTAMPS = frozenset({"timestamp-millis", "timestamp-micros"})


def to_json(value: Any) -> Any:
    """A decoded record (or any value in it) as JSON-ready data."""
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, datetime | uuid.UUID | bytes | bytearray):
        return json_default(value)
    return value


def json_default(value: Any) -> Any:
    """For `json.dumps(default=...)`: what `to_json` makes of a value JSON cannot hold, so a
    record can be written without first being copied by `to_json`."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _timestamp(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise MalformedRecord(f"{where}: {value!r} is not an ISO 8601 time") from None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    raise MalformedRecord(f"{where}: expected an ISO 8601 time, got {type(value).__name__}")


def _convert(schema: Any, value: Any, where: str, named: dict[str, Any]) -> Any:
    if isinstance(schema, str):
        if schema in named:
            return _convert(named[schema], value, where, named)
        if schema == "bytes" and isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except ValueError:
                raise MalformedRecord(f"{where}: bytes must be base64") from None
        return value
    if isinstance(schema, list):
        if value is None:
            return None
        for branch in schema:
            if branch == "null":
                continue
            try:
                return _convert(branch, value, where, named)
            except MalformedRecord:
                continue
        return value  # let the encoder report the mismatch
    kind = schema.get("type")
    if isinstance(schema.get("name"), str) and kind in ("record", "enum", "fixed"):
        named[schema["name"]] = schema
        ns = schema.get("namespace")
        if ns:
            named[f"{ns}.{schema['name']}"] = schema
    if schema.get("logicalType") in _TIMESTAMPS and value is not None:
        return _timestamp(value, where)
    if kind == "record":
        if not isinstance(value, Mapping):
            raise MalformedRecord(f"{where or 'record'}: expected a JSON object")
        known = {f["name"] for f in schema["fields"]}
        extra = sorted(set(value) - known)
        if extra:
            raise MalformedRecord(f"{where or 'record'}: unknown fields {extra}")
        return {
            f["name"]: _convert(
                f["type"], value[f["name"]], f"{where}.{f['name']}".lstrip("."), named
            )
            for f in schema["fields"]
            if f["name"] in value
        }
    if kind == "array" and isinstance(value, list):
        return [_convert(schema["items"], v, f"{where}[{i}]", named) for i, v in enumerate(value)]
    if kind == "map" and isinstance(value, Mapping):
        return {k: _convert(schema["values"], v, f"{where}.{k}", named) for k, v in value.items()}
    if isinstance(kind, dict | list):
        return _convert(kind, value, where, named)
    return _convert(kind, value, where, named) if isinstance(kind, str) and kind in named else value


def from_json(store: SchemaStore, name: str, obj: Any) -> dict[str, Any]:
    """A JSON object as a record fastavro can encode with the schema `name`."""
    result = _convert(store.schema(name), obj, "", {})
    if not isinstance(result, dict):
        raise MalformedRecord(f"a {name} record must be a JSON object")
    return result
