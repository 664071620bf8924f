"""Record values between Avro, Python and JSON: millisecond UTC times, uuids, JSON-ready copies."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def millis(moment: datetime) -> datetime:
    """An aware UTC datetime cut to whole milliseconds, exactly what Avro timestamp-millis keeps."""
    if moment.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    return _EPOCH + timedelta(milliseconds=ms)


def as_time(value: Any) -> datetime:
    """A record timestamp (aware datetime or epoch millis) as an aware UTC datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in record")
        return value.astimezone(UTC)
    if isinstance(value, int):
        return _EPOCH + timedelta(milliseconds=value)
    raise TypeError(f"not a timestamp: {value!r}")


def as_uuid(value: Any) -> str:
    """A uuid field (str or uuid.UUID) as its canonical string."""
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def json_ready(value: Any) -> Any:
    """A decoded Avro value as plain JSON: datetimes as ISO 8601 UTC, uuids as str, bytes base64."""
    if isinstance(value, datetime):
        return as_time(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value
