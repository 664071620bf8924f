"""A MISP feed lists of an event what PyMISP makes of the whole event: manifest and hashes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymisp import MISPEvent
from pymisp.exceptions import PyMISPError

from bench.stix import make_bundle
from connectors._convert import stix_to_misp
from connectors.isac._misp_feed import feed_entry
from tests.samples import sample_params

#: What PyMISP raises on a value it cannot load or hash.
_REFUSED = (PyMISPError, AttributeError, TypeError, ValueError)
EVENT_UUID = "a3f234d2-26c5-5e83-b566-75da7c43e168"
ORGC = {"name": "soc-fr", "uuid": "5f3b1a8e-0d6c-4f5e-9a7b-1c2d3e4f5a6b"}


def _whole(event: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    loaded = MISPEvent()
    loaded.load({"Event": copy.deepcopy(event)})
    return loaded.manifest, loaded.attributes_hashes("md5")


def _dated(event: dict[str, Any]) -> dict[str, Any]:
    """`event` with a date and timestamp (else PyMISP's manifest says now, which moves)."""
    return {"date": "2026-11-27", "timestamp": "1796455653", "Orgc": ORGC, **event}


def assert_same_entry(event: dict[str, Any]) -> None:
    event = _dated(event)
    assert feed_entry(copy.deepcopy(event)) == _whole(event)


@pytest.mark.parametrize("path", sample_params("misp/*.json"))
def test_a_shared_event_is_listed_as_pymisp_lists_it(path: Path | None) -> None:
    assert path is not None
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert_same_entry(doc.get("Event", doc))


def test_a_converted_bundle_is_listed_as_pymisp_lists_it() -> None:
    event = stix_to_misp(make_bundle(600)["objects"], event_uuid=EVENT_UUID)
    assert len(event["Attribute"]) > 100
    assert_same_entry(event)


_TYPES = st.sampled_from(
    ["ip-dst", "domain", "url", "md5", "ip-dst|port", "filename|md5", "malware-sample",
     "datetime", "text", "counter", "comment"]
)  # fmt: skip
_VALUES = st.sampled_from(
    ["198.51.100.7", " padded ", "", "   ", "a\x00", "x|y", "2026-11-27T21:15:00+00:00",
     "dropper.exe|d41d8cd98f00b204e9800998ecf8427e", "élan"]
) | st.integers(-2, 2)  # fmt: skip
_ATTRIBUTE = st.fixed_dictionaries(
    {"type": _TYPES, "value": _VALUES},
    optional={"category": st.sampled_from(["Network activity", "Other"]), "to_ids": st.booleans()},
)
_OBJECT = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["file", "domain-ip", "x-no-such-template"]),
        "Attribute": st.lists(
            st.tuples(st.sampled_from(["filename", "ip", "domain", "other"]), _ATTRIBUTE).map(
                lambda p: {"object_relation": p[0], **p[1]}
            ),
            max_size=4,
        ),
    }
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_ATTRIBUTE, max_size=5), st.lists(_OBJECT, max_size=3))
def test_odd_values_are_kept_dropped_and_hashed_as_pymisp_does(
    attributes: list[dict[str, Any]], objects: list[dict[str, Any]]
) -> None:
    """Empty and padded values, composite types, datetimes: an object drops an empty
    value, an event keeps it; what is kept is hashed the same, in the same order."""
    event = {"uuid": EVENT_UUID, "info": "odd", "Attribute": attributes, "Object": objects}
    try:
        expected = _whole(_dated(event))
    except _REFUSED:  # PyMISP refuses some (a datetime it cannot read): so must we (which
        # error comes first may differ: the whole event is loaded before it is hashed)
        with pytest.raises(_REFUSED):
            feed_entry(copy.deepcopy(_dated(event)))
        return
    assert feed_entry(copy.deepcopy(_dated(event))) == expected
