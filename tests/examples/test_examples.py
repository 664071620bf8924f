"""examples/: every file is valid in its format and whole through our readers.

The examples are the repository's own sample data (the demo's scenario, and the
format tests' inputs on a fresh clone), so a file that drifts from its format
must fail here, not in the middle of `make demo`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import stix2
import stix2validator
from pymisp import MISPEvent

from broker import config
from connectors import tlp
from connectors.siena import parse_case_message
from connectors.soc import parse_csv, parse_misp, parse_stix
from tests.samples import EXAMPLES, example_files

STIX = example_files("stix/*.json")
MISP = example_files("misp/*.json")
CSV = example_files("csv/*.csv")
CASES = example_files("siena/*.json")


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_every_example_file_is_of_a_format_tested_here() -> None:
    tested = {*STIX, *MISP, *CSV, *CASES, EXAMPLES / "README.md"}
    files = {p for p in EXAMPLES.rglob("*") if p.is_file()}
    assert files == tested
    assert len(STIX) >= 4 and len(MISP) >= 3 and CSV and len(CASES) >= 2


def test_the_package_finds_the_examples() -> None:
    # an editable install reads the checkout's folder (a wheel has its copy in broker/_data)
    assert config.examples_dir().resolve() == EXAMPLES.resolve()


@pytest.mark.parametrize("path", STIX, ids=ids(STIX))
def test_stix_bundle_is_valid_stix_21_without_custom_content(path: Path) -> None:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    parsed = stix2.parse(bundle, allow_custom=False)  # raises on anything non-standard
    assert len(parsed.objects) == len(bundle["objects"])
    result = stix2validator.validate_instance(
        bundle, stix2validator.ValidationOptions(version="2.1")
    )
    assert result.is_valid and not result.errors, [str(e) for e in result.errors]


@pytest.mark.parametrize("path", STIX, ids=ids(STIX))
def test_stix_bundle_goes_whole_on_its_own_markings(path: Path) -> None:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    result = parse_stix(path.read_bytes(), default_tlp=None)  # no default: markings decide
    assert result.skipped == ()
    assert len(result.items) == len(bundle["objects"])
    defined = {o["id"] for o in bundle["objects"] if o["type"] == "marking-definition"}
    for obj in bundle["objects"]:  # every marking an object uses is defined in its bundle
        used = set(obj.get("object_marking_refs", []))
        used |= {g["marking_ref"] for g in obj.get("granular_markings", [])}
        assert used <= defined, obj["id"]


def test_the_scenario_covers_what_the_formats_offer() -> None:
    """The demo and the format tests rely on these being in the examples."""
    objects = [o for p in STIX for o in json.loads(p.read_text())["objects"]]
    types = {o["type"] for o in objects}
    assert {
        "indicator", "malware", "threat-actor", "intrusion-set", "campaign", "relationship",
        "report", "marking-definition", "sighting", "identity", "course-of-action",
        "infrastructure", "attack-pattern", "observed-data", "vulnerability", "location",
    } <= types  # fmt: skip
    levels = {
        tlp.from_stix_marking(o["id"], {o["id"]: o})
        for o in objects
        if o["type"] == "marking-definition"
    }
    assert {"CLEAR", "GREEN", "AMBER", "AMBER+STRICT"} <= levels
    assert any(o.get("definition_type") == "statement" for o in objects)
    assert any("granular_markings" in o for o in objects)
    (report,) = [o for o in objects if o["type"] == "report"]
    ids_in_bundles = {o["id"] for o in objects}
    assert set(report["object_refs"]) <= ids_in_bundles


@pytest.mark.parametrize("path", MISP, ids=ids(MISP))
def test_misp_event_is_read_whole_by_our_reader_and_pymisp(path: Path) -> None:
    result = parse_misp(path.read_bytes(), default_tlp=None)  # its own tlp: tag decides
    assert result.skipped == ()
    (item,) = result.items
    assert item.categories  # an ecsirt tag: the ENISA class the policy decides on
    event = MISPEvent()
    event.load_file(str(path))
    assert event.attributes or event.objects
    assert any(t.name.startswith("tlp:") for t in event.tags)
    doc = json.loads(path.read_text())["Event"]
    assert item.tlp == tlp.from_misp_tag(next(t["name"] for t in doc["Tag"] if "tlp:" in t["name"]))


def test_misp_objects_reference_objects_of_their_event() -> None:
    events = [json.loads(p.read_text())["Event"] for p in MISP]
    refs = [
        (r, {o["uuid"] for o in e.get("Object", [])})
        for e in events
        for o in e.get("Object", [])
        for r in o.get("ObjectReference", [])
    ]
    assert refs
    assert all(r["referenced_uuid"] in uuids for r, uuids in refs)
    assert {"RED", "AMBER", "GREEN"} <= {
        parse_misp(p.read_bytes(), default_tlp=None).items[0].tlp for p in MISP
    }


@pytest.mark.parametrize("path", CSV, ids=ids(CSV))
def test_csv_rows_all_become_indicators(path: Path) -> None:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    result = parse_csv(path.read_bytes(), default_tlp=None)  # each row has its own TLP
    assert result.skipped == ()
    assert [i.record["value"] for i in result.items] == [r["value"] for r in rows]
    assert {i.tlp for i in result.items} >= {"CLEAR", "GREEN", "AMBER", "AMBER+STRICT"}


@pytest.mark.parametrize("path", CASES, ids=ids(CASES))
def test_case_message_is_read_by_the_siena_reader(path: Path) -> None:
    case = parse_case_message(path.read_bytes(), what=path.name)
    doc = json.loads(path.read_text())
    assert case.record["case_reference"] == doc["case_reference"]
    assert list(case.recipients) == doc["recipients"]
    assert case.handling_codes == tuple(doc["handling_codes"])
    assert len(case.record["attachments"]) == len(doc.get("attachments", []))
