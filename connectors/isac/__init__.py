"""ISAC side: delivered broker records -> STIX 2.1 bundles, MISP events, JSON lines, and file sinks.

    sink = StixFileSink(Path("out"))
    await sink.deliver(Delivered("Indicator", record, "AMBER", msg_id, sender, received))

See docs/connectors.md for the output formats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.exports import lazy_exports

if TYPE_CHECKING:
    from connectors._values import json_ready
    from connectors.isac._jsonl import to_jsonl_line
    from connectors.isac._misp import MISP_PAYLOADS, to_misp_event
    from connectors.isac._stix import STIX_PAYLOADS, indicator_stix_id, to_stix_bundle
    from connectors.isac.delivered import Delivered
    from connectors.isac.sinks import JsonlFileSink, MispFileSink, Sink, StixFileSink

# Each name is imported when first used: a JSON-lines subscriber does not load MISP's library.
__getattr__ = lazy_exports(
    __name__,
    {
        "json_ready": "connectors._values",
        "to_jsonl_line": "connectors.isac._jsonl",
        **dict.fromkeys(("MISP_PAYLOADS", "to_misp_event"), "connectors.isac._misp"),
        **dict.fromkeys(
            (
                "STIX_PAYLOADS",
                "indicator_stix_id",
                "to_stix_bundle",
            ),
            "connectors.isac._stix",
        ),
        "Delivered": "connectors.isac.delivered",
        **dict.fromkeys(
            (
                "JsonlFileSink",
                "MispFileSink",
                "Sink",
                "StixFileSink",
            ),
            "connectors.isac.sinks",
        ),
    },
    globals(),
)

__all__ = [
    "MISP_PAYLOADS",
    "STIX_PAYLOADS",
    "Delivered",
    "JsonlFileSink",
    "MispFileSink",
    "Sink",
    "StixFileSink",
    "indicator_stix_id",
    "json_ready",
    "to_jsonl_line",
    "to_misp_event",
    "to_stix_bundle",
]
