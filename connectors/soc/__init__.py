"""SOC side: STIX 2.1 bundles, MISP events and the documented CSV -> broker payload records.

    result = parse_file(Path("bundle.json"), default_tlp="AMBER")
    for item in result.items: ...      # Item(payload_type, record, tlp, categories, source_id)
    for skip in result.skipped: ...    # Skipped(source_id, source_type, reason)

A big STIX bundle is checked on `workers` processes (`workers=cores()`: every CPU
this process may use). A file that cannot be read at all raises
`broker.errors.InputFormatError`; a bad object inside a good file becomes a
`Skipped` entry. See docs/connectors.md.
"""

from __future__ import annotations

import threading
from pathlib import Path

from broker.errors import InputFormatError
from connectors._input import DEFAULT_MAX_BYTES, as_text, check_size, read_limited
from connectors._processes import cores
from connectors.soc.result import NO_TLP, Item, ParseResult, Skipped

# Each format's parser is imported when a file of it is parsed: MISP's library (PyMISP)
# costs more to import than a small STIX file costs to publish.

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMATS",
    "NO_TLP",
    "Item",
    "ParseResult",
    "Skipped",
    "cores",
    "parse_csv",
    "parse_file",
    "parse_misp",
    "parse_stix",
    "sniff",
]

FORMATS = ("stix", "misp", "csv")


def parse_stix(
    data: bytes | str,
    *,
    default_tlp: str | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    workers: int = 1,
) -> ParseResult:
    """A STIX 2.1 (or upgradable 2.0) bundle (`workers` > 1: a big one's objects are
    checked in that many processes)."""
    from connectors.soc._stix import parse_stix as _parse_stix

    check_size(data, max_bytes, "STIX input")
    return _parse_stix(data, default_tlp=default_tlp, workers=workers)


def parse_misp(
    data: bytes | str, *, default_tlp: str | None, max_bytes: int = DEFAULT_MAX_BYTES
) -> ParseResult:
    """A MISP event as MISP exports it (JSON)."""
    from connectors.soc._misp import parse_misp as _parse_misp

    check_size(data, max_bytes, "MISP input")
    return _parse_misp(data, default_tlp=default_tlp)


def parse_csv(
    data: bytes | str, *, default_tlp: str | None, max_bytes: int = DEFAULT_MAX_BYTES
) -> ParseResult:
    """The documented indicator CSV."""
    from connectors.soc._csv import parse_csv as _parse_csv

    check_size(data, max_bytes, "CSV input")
    return _parse_csv(data, default_tlp=default_tlp)


def sniff(path: Path, data: bytes) -> str:
    """'stix', 'misp' or 'csv', from the extension and the first JSON keys."""
    if path.suffix.lower() == ".csv":
        return "csv"
    head = as_text(data[:65536], str(path)).lstrip()
    if not head.startswith(("{", "[")):
        if path.suffix.lower() in ("", ".txt"):
            return "csv"
        raise InputFormatError(f"{path}: neither JSON (STIX, MISP) nor .csv; pass --format")
    compact = "".join(head.split())
    if '"type":"bundle"' in compact:
        return "stix"
    if '"Event":' in compact or '"Attribute":' in compact or '"info":' in compact:
        return "misp"
    raise InputFormatError(
        f"{path}: JSON but neither a STIX bundle nor a MISP event; pass --format"
    )


def parse_file(
    path: Path,
    *,
    default_tlp: str | None,
    fmt: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    workers: int = 1,
    stop: threading.Event | None = None,
) -> ParseResult:
    """Read `path` (refused over `max_bytes`), detect its format unless `fmt` is given, parse it
    (a big STIX bundle on `workers` processes, its checks ended by `stop`: `Interrupted`)."""
    data = read_limited(path, max_bytes)
    kind = fmt or sniff(path, data)
    if kind == "stix":
        from connectors.soc._stix import parse_stix as _parse_stix

        return _parse_stix(
            data, default_tlp=default_tlp, what=str(path), workers=workers, stop=stop
        )
    if kind == "misp":
        from connectors.soc._misp import parse_misp as _parse_misp

        return _parse_misp(data, default_tlp=default_tlp, what=str(path))
    if kind == "csv":
        from connectors.soc._csv import parse_csv as _parse_csv

        return _parse_csv(data, default_tlp=default_tlp, what=str(path))
    raise InputFormatError(f"unknown input format {fmt!r}; use one of {', '.join(FORMATS)}")
