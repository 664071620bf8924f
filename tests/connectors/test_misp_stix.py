"""The MISP sinks' converter makes the MISP event misp-stix alone makes of the same objects.

`connectors._misp_stix` reads simple patterns without ANTLR and links indicators with
observables by lookup; neither may change a byte of the event. misp-stix alone here is
its external STIX 2 converter on objects parsed by stix2, with only the identity-table
fix (without it, misp-stix raises on some of these bundles instead of converting them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stix2
from misp_stix_converter import ExternalSTIX2toMISPParser

from bench.stix import make_bundle
from connectors._convert import parse_stix, stix_to_misp
from tests.samples import sample_params

EVENT_UUID = "a3f234d2-26c5-5e83-b566-75da7c43e168"


class _MispStixAlone(ExternalSTIX2toMISPParser):  # type: ignore[misc]
    def _reset_bundle_state(self) -> None:
        super()._reset_bundle_state()
        self._identity: dict[str, Any] = {}


def _alone(objects: list[dict[str, Any]]) -> dict[str, Any]:
    bundle = stix2.parse(
        {"type": "bundle", "id": f"bundle--{EVENT_UUID}", "objects": objects}, allow_custom=True
    )
    parser = _MispStixAlone()
    parser.load_stix_bundle(bundle)
    parser.parse_stix_bundle(single_event=True)
    event: dict[str, Any] = json.loads(parser.misp_event.to_json())
    event["uuid"] = EVENT_UUID
    return event


def _stable(value: Any, *, random_uuids: bool = False) -> Any:
    """`value` without what misp-stix makes random (uuid4) on every run: the uuids of a
    stix2-pattern object's attributes and of object references."""
    if isinstance(value, dict):
        random_uuids = random_uuids or value.get("name") == "stix2-pattern"
        drop = "object_uuid" in value or (random_uuids and value.get("name") != "stix2-pattern")
        return {
            k: _stable(v, random_uuids=random_uuids)
            for k, v in value.items()
            if not (drop and k == "uuid")
        }
    if isinstance(value, list):
        return [_stable(v, random_uuids=random_uuids) for v in value]
    return value


def assert_same_event(objects: list[dict[str, Any]]) -> None:
    ours = stix_to_misp(objects, event_uuid=EVENT_UUID)
    assert _stable(ours) == _stable(_alone(objects))
    parsed = stix_to_misp([parse_stix(o) for o in objects], event_uuid=EVENT_UUID)
    assert _stable(parsed) == _stable(ours)  # objects parsed ahead (the sink's cache) too


@pytest.mark.parametrize("path", sample_params("stix/*.json"))
def test_a_shared_bundle_becomes_the_event_misp_stix_alone_makes(path: Path | None) -> None:
    assert path is not None
    objects = json.loads(path.read_text(encoding="utf-8"))["objects"]
    if any(o.get("spec_version") != "2.1" for o in objects):
        pytest.skip("STIX 2.0 goes to MISP another way (connectors.soc upgrades it)")
    assert_same_event(objects)


def test_a_large_mixed_bundle_becomes_the_event_misp_stix_alone_makes() -> None:
    """Indicators, observables and observed data that match each other: the links misp-stix
    makes between them (`to_ids`, the indicator's observable references) are all there."""
    objects = make_bundle(400)["objects"]
    kinds = {o["type"] for o in objects}
    assert {"indicator", "observed-data", "ipv4-addr"} <= kinds
    event = stix_to_misp(objects, event_uuid=EVENT_UUID)
    assert any(a.get("to_ids") for a in event.get("Attribute", ()))
    assert_same_event(objects)
