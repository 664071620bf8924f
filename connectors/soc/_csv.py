"""The documented indicator CSV -> Indicator records, one per row (see docs/connectors.md).

A header line names the columns; `type` and `value` are required. A bad row is
skipped with its line number and reason; a bad header refuses the whole file.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from broker.errors import ConfigError, InputFormatError
from broker.vocabulary import CATEGORIES
from connectors import tlp as tlp_levels
from connectors._input import as_text
from connectors._observables import HASH_NAMES, Observable, check_value, to_pattern
from connectors._values import millis
from connectors.soc.result import NO_TLP, Item, ParseResult, Skipped, category_set

REQUIRED_COLUMNS = ("type", "value")
OPTIONAL_COLUMNS = (
    "tlp",
    "id",
    "name",
    "description",
    "confidence",
    "valid_from",
    "valid_until",
    "labels",
    "categories",
)
#: CSV `type` values and the observable each stands for.
CSV_TYPES: dict[str, tuple[str, str | None]] = {
    "ipv4-addr": ("ipv4-addr", None),
    "ipv6-addr": ("ipv6-addr", None),
    "domain-name": ("domain-name", None),
    "url": ("url", None),
    "email-addr": ("email-addr", None),
    "file-name": ("file", None),
    **{h: ("file", h) for h in HASH_NAMES},
}
#: Namespace of the uuid5 ids given to rows without an `id` column value.
CSV_ID_NAMESPACE = uuid.UUID("6f1d8a52-4b0e-5c4e-9a57-0c9e2b1d3f10")
LIST_SEPARATOR = ";"


class _BadRow(ValueError):
    """A row that cannot become a record; the message is the reason."""


def parse_csv(
    data: bytes | str,
    *,
    default_tlp: str | None,
    what: str = "CSV input",
    now: datetime | None = None,
) -> ParseResult:
    """One Indicator per good row; bad rows skipped as 'line N'. `now` is valid_from's default."""
    default = tlp_levels.normalise(default_tlp) if default_tlp else None
    text = as_text(data, what)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputFormatError(
            f"{what}: empty CSV; the first line must name the columns (type,value,...)"
        ) from None
    except csv.Error as exc:
        raise InputFormatError(f"{what}: line 1: {exc}") from None
    columns = [c.strip().lower() for c in header]
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if unknown or missing or len(set(columns)) != len(columns):
        raise InputFormatError(
            f"{what}: bad header line: "
            + "; ".join(
                p
                for p in (
                    f"unknown column(s) {', '.join(unknown)}" if unknown else "",
                    f"missing column(s) {', '.join(missing)}" if missing else "",
                    "a column appears twice" if len(set(columns)) != len(columns) else "",
                )
                if p
            )
            + f"; known columns: {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
        )
    moment = millis(now or datetime.now(UTC))
    items: list[Item] = []
    skipped: list[Skipped] = []
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            skipped.append(Skipped(f"line {line}", "csv-row", f"unreadable CSV: {exc}"))
            continue
        if not fields:
            continue  # blank line
        source_id = f"line {line}"
        if len(fields) != len(columns):
            reason = f"expected {len(columns)} fields, got {len(fields)}"
            skipped.append(Skipped(source_id, "csv-row", reason))
            continue
        row = {c: f.strip() for c, f in zip(columns, fields, strict=True)}
        try:
            items.append(_row(row, source_id, default, moment))
        except _BadRow as exc:
            skipped.append(Skipped(source_id, "csv-row", str(exc)))
    return ParseResult(tuple(items), tuple(skipped), "csv")


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(LIST_SEPARATOR) if p.strip()]


def _time(text: str, column: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _BadRow(f"{column}: not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        if "T" in text or " " in text:
            raise _BadRow(f"{column}: {text!r} has no time zone (add Z or +01:00)")
        moment = moment.replace(tzinfo=UTC)  # a plain date: midnight UTC
    return millis(moment)


def _row(row: dict[str, str], source_id: str, default: str | None, now: datetime) -> Item:
    kind = row["type"].lower()
    if kind not in CSV_TYPES:
        raise _BadRow(f"unknown type {row['type']!r}; use one of {', '.join(CSV_TYPES)}")
    observable_type, hash_name = CSV_TYPES[kind]
    value = row["value"].lower() if hash_name else row["value"]
    obs = Observable(observable_type, value, hash_name)
    problem = check_value(obs)
    if problem:
        raise _BadRow(problem)
    try:
        row_tlp = tlp_levels.normalise(row["tlp"]) if row.get("tlp") else None
    except ConfigError:
        raise _BadRow(f"tlp: not a TLP level: {row['tlp']!r}") from None
    level = tlp_levels.strictest([row_tlp, default])
    if level is None:
        raise _BadRow(NO_TLP)
    confidence: int | None = None
    if row.get("confidence"):
        try:
            confidence = int(row["confidence"])
        except ValueError:
            raise _BadRow(f"confidence: not an integer: {row['confidence']!r}") from None
        if not 0 <= confidence <= 100:
            raise _BadRow(f"confidence: {confidence} is outside 0-100")
    categories = _split(row.get("categories", ""))
    bad = [c for c in categories if c not in CATEGORIES]
    if bad:
        raise _BadRow(f"categories: unknown {', '.join(bad)}; use ENISA taxonomy classes")
    if row.get("id"):
        try:
            record_id = str(uuid.UUID(row["id"]))
        except ValueError:
            raise _BadRow(f"id: not a uuid: {row['id']!r}") from None
    else:
        record_id = str(uuid.uuid5(CSV_ID_NAMESPACE, f"{kind}|{value}"))
    valid_from = _time(row["valid_from"], "valid_from") if row.get("valid_from") else now
    valid_until = _time(row["valid_until"], "valid_until") if row.get("valid_until") else None
    if valid_until is not None and valid_until <= valid_from:
        raise _BadRow("valid_until is not after valid_from")
    record: dict[str, Any] = {
        "id": record_id,
        "observable_type": observable_type,
        "value": value,
        "pattern": to_pattern(obs),
        "pattern_type": "stix",
        "name": row.get("name") or None,
        "description": row.get("description") or None,
        "confidence": confidence,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "kill_chain_phases": [],
        "labels": _split(row.get("labels", "")),
        "external_references": [],
        "source_object_id": None,
    }
    return Item(
        "Indicator",
        record,
        level,
        category_set(categories),
        source_id,
        identity=row_identity(row, kind, value),
    )


def row_identity(row: dict[str, str], kind: str, value: str) -> str:
    """A row as what it says, not where it stands: every non-empty column (names lower
    case, values stripped; `type` lower case, hash values lower case), sorted by column,
    as canonical JSON. Moving a row, reordering columns or adding empty ones keeps it;
    changing any value makes it another row (a new version)."""
    fields = {c: v for c, v in row.items() if v}
    fields.update(type=kind, value=value)
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
