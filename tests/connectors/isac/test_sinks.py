"""File sinks: deliver writes whole files (atomically) or whole lines, named by message id."""

from __future__ import annotations

import json
from pathlib import Path

from pymisp import MISPEvent

from broker.schemas import SchemaStore
from connectors.isac import Delivered, JsonlFileSink, MispFileSink, StixFileSink, to_jsonl_line
from connectors.soc import Item
from tests.connectors.isac.test_stix_out import RECEIVED, delivered, validate

RECORD = {
    "id": "6b1f1f0e-3c1a-4c1e-9d5e-0a9f4a6b7c8d",
    "observable_type": "url",
    "value": "https://bad.example/",
    "pattern": "[url:value = 'https://bad.example/']",
    "valid_from": RECEIVED,
}


def _item(store: SchemaStore, n: int = 1, **flags: bool) -> Delivered:
    return delivered(
        store, Item("Indicator", RECORD, "AMBER", frozenset({"fraud"}), "x"), n, **flags
    )


async def test_stix_sink_writes_one_valid_bundle_file_per_message(
    store: SchemaStore, tmp_path: Path
) -> None:
    sink = StixFileSink(tmp_path / "stix")
    path = await sink.deliver(_item(store))
    assert path.name == "msg-1.stix.json"
    validate(json.loads(path.read_text()))
    again = await sink.deliver(_item(store))  # re-delivery after a crash: same file
    assert again == path
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left


async def test_misp_sink_writes_a_loadable_event(store: SchemaStore, tmp_path: Path) -> None:
    path = await MispFileSink(tmp_path).deliver(_item(store, 2))
    event = MISPEvent()
    event.load_file(str(path))
    assert [a.uuid for a in event.attributes] == [RECORD["id"]]


async def test_jsonl_sink_appends_whole_lines_and_survives_a_torn_tail(
    store: SchemaStore, tmp_path: Path
) -> None:
    sink = JsonlFileSink(tmp_path)
    path = await sink.deliver(_item(store, 1))
    await sink.deliver(_item(store, 2, retracted=True))
    assert not path.exists()  # kept until the batch's flush
    await sink.flush()
    with path.open("ab") as fh:
        fh.write(b'{"message_id": "torn')  # a crash in the middle of a write
    await sink.deliver(_item(store, 3))
    await sink.deliver(_item(store, 3))  # twice in one batch: one line
    await sink.flush()
    lines = path.read_text().splitlines()
    assert path.name == "2026-11-27.jsonl"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            assert line.startswith('{"message_id": "torn')
    assert [p["message_id"] for p in parsed] == ["msg-1", "msg-2", "msg-3"]
    assert parsed[1]["retracted"] is True
    assert parsed[0]["record"]["valid_from"] == "2026-11-27T12:00:00.000Z"
    assert parsed[0]["record"]["id"] == RECORD["id"]


def test_jsonl_line_is_one_line_with_everything(store: SchemaStore) -> None:
    line = to_jsonl_line(_item(store))
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["tlp"] == "AMBER" and doc["categories"] == ["fraud"]
    assert doc["sender"] == "cert-eu" and doc["payload_type"] == "Indicator"
    assert doc["record"]["pattern"] == RECORD["pattern"]
