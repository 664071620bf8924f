"""What `jcu demo` publishes: the shipped examples' scenario, or every file of other data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broker import config
from broker.cli.demo import OTHER_DATA_TLP, SOC_INPUTS, soc_inputs
from broker.errors import ConfigError
from connectors.soc import parse_file
from tests.samples import EXAMPLES


def test_by_default_the_scenario_plays_on_the_shipped_examples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JCU_FIXTURES", raising=False)
    where, inputs = soc_inputs(None)
    assert where == config.examples_dir() and inputs == SOC_INPUTS
    levels = set()
    for rel, tlp, _, named in inputs:
        parsed = parse_file(where / rel, default_tlp=tlp)
        assert parsed.items and not parsed.skipped, rel
        levels |= {i.tlp for i in parsed.items}
        if "RED" in {i.tlp for i in parsed.items}:
            assert named  # RED goes to named recipients only
    assert levels == {"CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"}
    # every STIX, MISP and CSV example is in the scenario
    published = {rel for rel, *_ in inputs}
    assert published == {
        p.relative_to(EXAMPLES).as_posix()
        for pattern in ("stix/*.json", "misp/*.json", "csv/*.csv")
        for p in EXAMPLES.glob(pattern)
    }


def test_other_data_is_published_whole_in_name_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JCU_FIXTURES", raising=False)
    for rel in ("stix/b.json", "stix/a.json", "misp/e.json", "csv/i.csv", "notes/x.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "README.md", tmp_path / rel)  # content is not looked at here
    where, inputs = soc_inputs(tmp_path)
    assert where == tmp_path
    assert [rel for rel, *_ in inputs] == ["stix/a.json", "stix/b.json", "misp/e.json", "csv/i.csv"]
    assert {(tlp, named) for _, tlp, _, named in inputs} == {(OTHER_DATA_TLP, ())}


def test_jcu_fixtures_stands_in_for_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "misp").mkdir()
    shutil.copy(EXAMPLES / "misp" / "glassward-ransomware.json", tmp_path / "misp" / "g.json")
    monkeypatch.setenv("JCU_FIXTURES", str(tmp_path))
    assert soc_inputs(None)[1] == (("misp/g.json", OTHER_DATA_TLP, ("malicious-code",), ()),)


def test_a_directory_without_samples_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no samples in .*stix/\*\.json, misp/\*\.json"):
        soc_inputs(tmp_path)
