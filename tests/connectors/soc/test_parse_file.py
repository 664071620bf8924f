"""parse_file: format sniffing, the size limit (refused before reading), unreadable files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from broker.errors import InputFormatError
from connectors.soc import DEFAULT_MAX_BYTES, parse_file
from tests.samples import sample_params


@pytest.mark.parametrize("sample", sample_params("stix/*.json", "misp/*.json"))
def test_format_is_sniffed_from_content(sample: Path, tmp_path: Path) -> None:
    path = tmp_path / "input.dat"  # extension tells nothing
    shutil.copy(sample, path)
    assert parse_file(path, default_tlp="GREEN").format == sample.parent.name


def test_csv_is_recognised_by_extension(tmp_path: Path) -> None:
    path = tmp_path / "iocs.csv"
    path.write_text("type,value\nurl,https://bad.example/\n")
    result = parse_file(path, default_tlp="GREEN")
    assert result.format == "csv" and len(result.items) == 1


def test_explicit_format_overrides_sniffing(tmp_path: Path) -> None:
    path = tmp_path / "iocs.json"
    path.write_text("type,value\nurl,https://bad.example/\n")
    with pytest.raises(InputFormatError, match="neither JSON"):
        parse_file(path, default_tlp="GREEN")
    assert parse_file(path, default_tlp="GREEN", fmt="csv").format == "csv"
    with pytest.raises(InputFormatError, match="unknown input format 'xml'"):
        parse_file(path, default_tlp="GREEN", fmt="xml")


def test_50_mb_file_is_refused_quickly_with_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as fh:
        fh.write(b'{"type": "bundle", "objects": [')
        fh.truncate(50 * 1024 * 1024)  # sparse: 50 MB without writing 50 MB
    start = time.perf_counter()
    with pytest.raises(InputFormatError, match=r"larger than the limit \(52428800 > 20971520"):
        parse_file(path, default_tlp="GREEN")
    assert time.perf_counter() - start < 1.0
    assert DEFAULT_MAX_BYTES == 20 * 1024 * 1024


def test_size_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text("type,value\nurl,https://bad.example/\n")
    with pytest.raises(InputFormatError, match="larger than the limit"):
        parse_file(path, default_tlp="GREEN", max_bytes=10)
    assert parse_file(path, default_tlp="GREEN", max_bytes=1000).items


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="cannot read"):
        parse_file(tmp_path / "nope.json", default_tlp="GREEN")


def test_json_that_is_neither_stix_nor_misp_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(InputFormatError, match="neither a STIX bundle nor a MISP event"):
        parse_file(path, default_tlp="GREEN")


def test_50_mb_in_memory_input_is_refused_too() -> None:
    from connectors.soc import parse_csv, parse_misp, parse_stix

    blob = b" " * (50 * 1024 * 1024)
    for parse in (parse_stix, parse_misp, parse_csv):
        with pytest.raises(InputFormatError, match="larger than the limit"):
            parse(blob, default_tlp="GREEN")
