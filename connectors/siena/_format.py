"""The SIENA-style case message file (JSON, "jcu-case-message/1") <-> CaseMessage records.

The same format goes in (files a law enforcement user drops to publish) and
out (the mailbox the subscriber writes), so one reader and one writer define
it; docs/connectors.md describes it for people. Reading is strict: unknown
keys, missing handling codes or a bad attachment digest refuse the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from broker.errors import AttachmentDigestMismatch, ConfigError, InputFormatError
from broker.vocabulary import HANDLING_CODES as HANDLING_CODES
from connectors import _json
from connectors import tlp as tlp_levels
from connectors._atomic import safe_name, write_atomic
from connectors._input import DEFAULT_MAX_BYTES, as_text, load_json, read_limited
from connectors._values import as_time, as_uuid, json_ready, millis

FORMAT_ID = "jcu-case-message/1"
SOURCE_RELIABILITY = ("A", "B", "C", "X")
INFORMATION_ACCURACY = (1, 2, 3, 4)
#: TLP of a case message whose file names none.
DEFAULT_CASE_TLP = "AMBER"
#: Namespace of ids derived for files that carry no "id".
CASE_ID_NAMESPACE = uuid.UUID("0b6f3e4c-8d1a-5f7e-a2c4-3e9d7b1f5a60")

_REQUIRED = (
    "case_reference",
    "created",
    "sender",
    "recipients",
    "subject",
    "handling_codes",
    "evaluation",
)
_OPTIONAL = (
    "format",
    "id",
    "in_reply_to",
    "body",
    "persons",
    "handling_restrictions",
    "tlp",
    "attachments",
)
_CONTACT_KEYS = ("name", "organisation", "email", "phone")


@dataclass(frozen=True)
class CaseFile:
    """A case message read from a file: the record plus the labels the publisher needs."""

    record: dict[str, Any]  # validates against schemas/CaseMessage.avsc
    tlp: str
    handling_codes: tuple[str, ...]
    recipients: tuple[str, ...]
    personal_data: bool  # body, persons or attachments present


class _Bad(ValueError):
    """A field problem; the message names the field."""


def _text(doc: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise _Bad(f"{key}: expected a non-empty string")
    return value


def _contact(raw: Any, index: int) -> dict[str, Any]:
    if not isinstance(raw, dict) or set(raw) - set(_CONTACT_KEYS):
        raise _Bad(f"persons[{index}]: expected an object with keys {', '.join(_CONTACT_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _Bad(f"persons[{index}].name: expected a non-empty string")
    contact: dict[str, Any] = {"name": name}
    for key in _CONTACT_KEYS[1:]:
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise _Bad(f"persons[{index}].{key}: expected a string or null")
        contact[key] = value
    return contact


def _attachment(raw: Any, index: int, what: str) -> dict[str, Any]:
    where = f"attachments[{index}]"
    if not isinstance(raw, dict) or set(raw) != {"name", "media_type", "sha256", "data"}:
        raise _Bad(f"{where}: expected an object with name, media_type, sha256, data")
    for key in ("name", "media_type", "sha256", "data"):
        if not isinstance(raw[key], str):
            raise _Bad(f"{where}.{key}: expected a string")
    try:
        data = base64.b64decode(raw["data"], validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(f"{where}.data: not base64") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != raw["sha256"].lower():
        raise AttachmentDigestMismatch(
            f"{what}: {where} ({raw['name']!r}): SHA-256 is {digest}, the file states "
            f"{raw['sha256']}; the attachment was altered or damaged, ask the sender to resend"
        )
    return {"name": raw["name"], "media_type": raw["media_type"], "sha256": digest, "data": data}


def _record(doc: Mapping[str, Any], what: str) -> tuple[dict[str, Any], str]:
    unknown = set(doc) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise _Bad(f"unknown key(s) {', '.join(sorted(unknown))}")
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise _Bad(f"missing key(s) {', '.join(missing)}")
    if doc.get("format", FORMAT_ID) != FORMAT_ID:
        raise _Bad(f"format: {doc.get('format')!r} is not {FORMAT_ID!r}")
    case_reference, sender = _text(doc, "case_reference"), _text(doc, "sender")
    subject, body = _text(doc, "subject"), _text(doc, "body", required=False)
    try:
        created = millis(datetime.fromisoformat(_text(doc, "created")))
    except (ValueError, OverflowError):
        raise _Bad("created: expected an ISO 8601 time with a time zone") from None
    recipients = doc["recipients"]
    if (
        not isinstance(recipients, list)
        or not recipients
        or not all(isinstance(r, str) and r.strip() for r in recipients)
    ):
        raise _Bad("recipients: expected a non-empty list of participant ids")
    codes = doc["handling_codes"]
    if not isinstance(codes, list) or not codes or any(c not in HANDLING_CODES for c in codes):
        raise _Bad(f"handling_codes: expected a non-empty list of {', '.join(HANDLING_CODES)}")
    restrictions = doc.get("handling_restrictions")
    if restrictions is not None and not isinstance(restrictions, str):
        raise _Bad("handling_restrictions: expected a string or null")
    if "H3" in codes and not (restrictions or "").strip():
        raise _Bad("handling_restrictions: H3 needs the provider's restrictions stated")
    evaluation = doc["evaluation"]
    if not isinstance(evaluation, dict) or set(evaluation) != {
        "source_reliability",
        "information_accuracy",
    }:
        raise _Bad("evaluation: expected {source_reliability, information_accuracy}")
    if evaluation["source_reliability"] not in SOURCE_RELIABILITY:
        raise _Bad(f"evaluation.source_reliability: one of {', '.join(SOURCE_RELIABILITY)}")
    accuracy = evaluation["information_accuracy"]
    if isinstance(accuracy, bool) or accuracy not in INFORMATION_ACCURACY:
        raise _Bad("evaluation.information_accuracy: an integer 1-4")
    persons = doc.get("persons") or []
    attachments = doc.get("attachments") or []
    if not isinstance(persons, list) or not isinstance(attachments, list):
        raise _Bad("persons and attachments: expected lists")
    try:
        level = tlp_levels.normalise(doc["tlp"]) if doc.get("tlp") else DEFAULT_CASE_TLP
    except ConfigError:
        raise _Bad(f"tlp: not a TLP level: {doc.get('tlp')!r}") from None
    try:
        in_reply_to = as_uuid(doc["in_reply_to"]) if doc.get("in_reply_to") else None
        if doc.get("id"):
            record_id = as_uuid(doc["id"])
        else:
            seed = "|".join((case_reference, sender, created.isoformat(), subject))
            record_id = str(uuid.uuid5(CASE_ID_NAMESPACE, seed))
    except (ValueError, TypeError, AttributeError):
        raise _Bad("id / in_reply_to: expected a uuid") from None
    record = {
        "id": record_id,
        "case_reference": case_reference,
        "in_reply_to": in_reply_to,
        "created": created,
        "sender": sender,
        "recipients": list(recipients),
        "subject": subject,
        "body": body,
        "persons": [_contact(p, i) for i, p in enumerate(persons)],
        "handling_codes": sorted(set(codes)),
        "handling_restrictions": restrictions,
        "source_reliability": evaluation["source_reliability"],
        "information_accuracy": accuracy,
        "attachments": [_attachment(a, i, what) for i, a in enumerate(attachments)],
    }
    return record, level


def parse_case_message(data: bytes | str, *, what: str = "case message") -> CaseFile:
    """A case message file's content -> CaseFile; InputFormatError names the bad field."""
    doc = load_json(as_text(data, what), what)
    if not isinstance(doc, dict):
        raise InputFormatError(f"{what}: not a case message (expected a JSON object)")
    try:
        record, level = _record(doc, what)
    except _Bad as exc:
        raise InputFormatError(f"{what}: {exc}") from None
    return CaseFile(
        record=record,
        tlp=level,
        handling_codes=tuple(record["handling_codes"]),
        recipients=tuple(record["recipients"]),
        personal_data=bool(record["body"] or record["persons"] or record["attachments"]),
    )


def read_case_message(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> CaseFile:
    """Read and check one case message file (size limit, digests, handling codes)."""
    return parse_case_message(read_limited(Path(path), max_bytes), what=str(path))


def to_document(record: Mapping[str, Any], *, tlp: str = DEFAULT_CASE_TLP) -> dict[str, Any]:
    """A CaseMessage record as the file's JSON object (attachments base64, digests recomputed)."""
    attachments = []
    for att in record.get("attachments", ()):
        data = bytes(att["data"])
        digest = hashlib.sha256(data).hexdigest()
        if att.get("sha256") and str(att["sha256"]).lower() != digest:
            raise AttachmentDigestMismatch(
                f"attachment {att['name']!r}: record states SHA-256 {att['sha256']}, "
                f"data has {digest}"
            )
        attachments.append(
            {
                "name": att["name"],
                "media_type": att["media_type"],
                "sha256": digest,
                "data": base64.b64encode(data).decode("ascii"),
            }
        )
    return {
        "format": FORMAT_ID,
        "id": as_uuid(record["id"]),
        "case_reference": record["case_reference"],
        "in_reply_to": as_uuid(record["in_reply_to"]) if record.get("in_reply_to") else None,
        "created": json_ready(as_time(record["created"])),
        "sender": record["sender"],
        "recipients": list(record["recipients"]),
        "subject": record["subject"],
        "body": record.get("body", ""),
        "persons": [{k: p.get(k) for k in _CONTACT_KEYS} for p in record.get("persons", ())],
        "handling_codes": [str(getattr(c, "value", c)) for c in record["handling_codes"]],
        "handling_restrictions": record.get("handling_restrictions"),
        "evaluation": {
            "source_reliability": record["source_reliability"],
            "information_accuracy": record["information_accuracy"],
        },
        "tlp": tlp_levels.normalise(tlp),
        "attachments": attachments,
    }


def case_file_name(record: Mapping[str, Any]) -> str:
    """<case reference>-<message id>.json: one file per message, stable across re-delivery."""
    return f"{safe_name(str(record['case_reference']))}-{as_uuid(record['id'])}.json"


def write_case_message(
    directory: Path,
    record: Mapping[str, Any],
    *,
    tlp: str = DEFAULT_CASE_TLP,
    durable: bool = True,
) -> Path:
    """Write the record into `directory` in the file format, atomically and durably (fsync);
    with `durable=False` the caller syncs a batch of them at once (`_atomic.sync_files`)."""
    data = case_message_bytes(record, tlp=tlp)
    return write_atomic(Path(directory) / case_file_name(record), data, durable=durable)


def case_message_bytes(record: Mapping[str, Any], *, tlp: str = DEFAULT_CASE_TLP) -> bytes:
    """The file's content for the record (what `write_case_message` writes)."""
    return _json.pretty(to_document(record, tlp=tlp)) + b"\n"
