"""SIENA-style case messages: the JSON file format <-> eu.jcu.v1.CaseMessage records.

    case = read_case_message(Path("inbox/msg.json"))   # CaseFile(record, tlp, handling_codes, ...)
    write_case_message(Path("mailbox"), record, tlp="AMBER")

The format is described in docs/connectors.md.
"""

from __future__ import annotations

from connectors.siena._format import (
    DEFAULT_CASE_TLP,
    FORMAT_ID,
    HANDLING_CODES,
    CaseFile,
    case_file_name,
    parse_case_message,
    read_case_message,
    to_document,
    write_case_message,
)

__all__ = [
    "DEFAULT_CASE_TLP",
    "FORMAT_ID",
    "HANDLING_CODES",
    "CaseFile",
    "case_file_name",
    "parse_case_message",
    "read_case_message",
    "to_document",
    "write_case_message",
]
