"""Records for any payload schema: hypothesis strategies and a maximal record, from the schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond - dt.microsecond % 1000, tzinfo=UTC)


def strategy(schema: Any, named: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values valid for a stand-alone Avro schema (unicode strings, empty lists, extremes)."""
    named = {} if named is None else named
    if isinstance(schema, str):
        if schema in named:
            return strategy(named[schema], named)
        return {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(*_INT32),
            "long": st.integers(*_INT64),
            "float": st.floats(width=32, allow_nan=False),
            "double": st.floats(allow_nan=False),
            "bytes": st.binary(max_size=64),
            "string": st.text(max_size=40),
        }[schema]
    if isinstance(schema, list):
        return st.one_of(*(strategy(b, named) for b in schema))
    kind = schema["type"]
    if "name" in schema:
        named[schema["name"]] = schema
        named[f"{schema.get('namespace', 'eu.jcu.v1')}.{schema['name']}"] = schema
    logical = schema.get("logicalType")
    if logical == "uuid":
        return st.uuids().map(str)
    if logical == "timestamp-millis":
        return st.datetimes(
            min_value=datetime(1900, 1, 1), max_value=datetime(2300, 1, 1), timezones=st.just(UTC)
        ).map(_ms)
    if kind == "record":
        fields = {f["name"]: strategy(f["type"], named) for f in schema["fields"]}
        return st.fixed_dictionaries(fields)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(strategy(schema["items"], named), max_size=4)
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    return strategy(kind, named)


def maximal(schema: Any, named: dict[str, Any] | None = None, size: int = 2000) -> Any:
    """A record with every optional field set and long values everywhere."""
    named = {} if named is None else named
    if isinstance(schema, str):
        if schema in named:
            return maximal(named[schema], named, size)
        return {
            "boolean": True,
            "int": _INT32[1],
            "long": _INT64[1],
            "float": 1.5,
            "double": 1e308,
            "bytes": b"\xff" * size,
            "string": "\U0001f510é漢" * (size // 3),
        }[schema]
    if isinstance(schema, list):
        return maximal(next(b for b in schema if b != "null"), named, size)
    kind = schema["type"]
    if "name" in schema:
        named[schema["name"]] = schema
        named[f"{schema.get('namespace', 'eu.jcu.v1')}.{schema['name']}"] = schema
    if schema.get("logicalType") == "uuid":
        return str(uuid.UUID(int=2**128 - 1))
    if schema.get("logicalType") == "timestamp-millis":
        return _EPOCH + timedelta(days=365 * 300)
    if kind == "record":
        return {f["name"]: maximal(f["type"], named, size) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][-1]
    if kind == "array":
        return [maximal(schema["items"], named, size // 10) for _ in range(50)]
    if kind == "fixed":
        return b"\xff" * schema["size"]
    return maximal(kind, named, size)
