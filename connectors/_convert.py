"""MISP events <-> STIX 2.1, with MISP's own converter (`misp-stix`).

An ISAC whose tools read STIX (OpenCTI, a TAXII client) still gets what a SOC
shared as a MISP event, and one that runs MISP gets what was shared as STIX.
The mapping is MISP's (the library MISP itself imports and exports STIX
with), so it matches what a MISP instance would make of the same data. STIX to
MISP goes through `_misp_stix`, which reads simple patterns without ANTLR and
links indicators with observables by lookup: the same event, a fraction of the
time.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from broker.errors import ConfigError


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def misp_to_stix(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The STIX 2.1 objects of a MISP event (the value of "Event")."""
    from misp_stix_converter import MISPtoSTIX21Parser

    parser = MISPtoSTIX21Parser()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parser.parse_misp_event({"Event": json.loads(json.dumps(event))})
            bundle = json.loads(parser.bundle.serialize())
    except Exception as exc:
        # misp-stix raises whatever its code hits on input it does not expect
        raise ConfigError(f"MISP event cannot be written as STIX 2.1: {_one_line(exc)}") from None
    objects: list[dict[str, Any]] = bundle.get("objects", [])
    return objects


def _parsed(obj: Any) -> bool:
    return hasattr(obj, "serialize")  # a stix2 object (stix2 has no public base class)


def _indicator_or_dict(obj: Mapping[str, Any]) -> Any:
    """A STIX 2.1 indicator parsed as stix2 parses it, a simple pattern checked without
    ANTLR (`_stix_patterns.Indicator`); any other object as a dict, for stix2 to parse."""
    from connectors import _stix_patterns

    if obj.get("type") == "indicator" and obj.get("spec_version") == "2.1":
        return _stix_patterns.Indicator(allow_custom=True, **obj)
    return dict(obj)


def parse_stix(obj: Mapping[str, Any]) -> Any:
    """`obj` as a stix2 object (checked, its pattern included), for `stix_to_misp`: a caller
    converting the same objects again keeps these and skips parsing them again."""
    from connectors import _stix_patterns

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _stix_patterns.parse(obj)
    except Exception as exc:
        raise ConfigError(f"STIX objects cannot be written as MISP: {_one_line(exc)}") from None


def stix_to_misp(
    objects: Sequence[Mapping[str, Any]], *, event_uuid: str, info: str | None = None
) -> dict[str, Any]:
    """One MISP event (the value of "Event") of STIX 2.1 objects, with this uuid. Objects
    may be dicts or stix2 objects (`parse_stix`), which are not parsed again."""
    import stix2

    from connectors._misp_stix import STIX2toMISPConverter

    bundle_id = f"bundle--{event_uuid}"
    parser = STIX2toMISPConverter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bundle = stix2.parse(
                {
                    "type": "bundle",
                    "id": bundle_id,
                    "objects": [o if _parsed(o) else _indicator_or_dict(o) for o in objects],
                },
                allow_custom=True,
            )
            parser.load_stix_bundle(bundle)
            parser.parse_stix_bundle(single_event=True)
            event: dict[str, Any] = json.loads(parser.misp_event.to_json())
    except Exception as exc:
        # misp-stix raises whatever its code hits on input it does not expect
        raise ConfigError(f"STIX objects cannot be written as MISP: {_one_line(exc)}") from None
    event["uuid"] = event_uuid
    if info:
        event["info"] = info
    return event
