"""Reading input safely: a size limit checked before reading, UTF-8 text, JSON errors with place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from broker.errors import InputFormatError

#: Largest input file accepted by default (20 MiB); callers may pass another limit.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


def read_limited(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes, refusing files over `max_bytes` without reading them whole."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputFormatError(_too_large(path, size, max_bytes))
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise InputFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:  # grew since stat, or a special file
        raise InputFormatError(_too_large(path, len(data), max_bytes))
    return data


def _too_large(path: Path | str, size: int, limit: int) -> str:
    return (
        f"{path}: input is larger than the limit ({size} > {limit} bytes); "
        "split it or raise the limit (--max-size)"
    )


def check_size(data: bytes | str, max_bytes: int, what: str) -> None:
    """Refuse in-memory input over the limit, as for files."""
    if len(data) > max_bytes:
        raise InputFormatError(_too_large(what, len(data), max_bytes))


def as_text(data: bytes | str, what: str) -> str:
    """UTF-8 text (a BOM is accepted)."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"{what}: not UTF-8 text (byte {exc.start})") from None


def load_json(text: str, what: str) -> Any:
    """Parsed JSON, or an InputFormatError saying where it breaks (e.g. truncated)."""
    if not text.strip():
        raise InputFormatError(f"{what}: empty input")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at_end = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        hint = " (the file looks truncated)" if at_end else ""
        raise InputFormatError(
            f"{what}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}{hint}"
        ) from None
    except RecursionError:
        raise InputFormatError(f"{what}: JSON nested too deeply") from None
