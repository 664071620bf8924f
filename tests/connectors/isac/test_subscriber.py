"""The ISAC formats as subscriber sinks: idempotent per message id, retractions, nothing dropped."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymisp import MISPEvent

from broker.config import load as load_settings
from broker.envelope import Labels
from broker.pep.sink import Delivery, Retracted
from broker.schemas import SchemaStore
from connectors import tlp
from connectors.isac.factory import make_sink
from connectors.isac.subscriber import FormatSink, stix_objects_of
from connectors.taxii import ObjectQuery, TaxiiStore, collection_id_for, store_path
from tests.broker.pep.records import indicator, situation_report
from tests.connectors.isac.test_stix_out import validate

WHEN = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TOPIC = "jcu.civilian.indicators"


def delivery(
    store: SchemaStore,
    payload_type: str,
    record: dict[str, Any],
    *,
    message_id: str | None = None,
    received: datetime = WHEN,
    level: str = "AMBER",
    sender: str = "soc-fr",
) -> Delivery:
    """As the subscriber hands it over: the record decoded by fastavro (UUIDs, datetimes)."""
    _, decoded = store.decode(store.encode(payload_type, record))
    return Delivery(
        participant="enisa",
        message_id=message_id or str(uuid.uuid4()),
        sender=sender,
        payload_type=payload_type,
        record=decoded,
        labels=Labels.of(level, categories=["malicious-code"]),
        topic=TOPIC,
        partition=0,
        offset=1,
        created=WHEN,
        received=received,
    )


def retraction(message_id: str) -> Retracted:
    return Retracted("enisa", message_id, "soc-fr", "false positive", WHEN + timedelta(hours=1))


@pytest.mark.parametrize("fmt", ["stix", "misp", "jsonl"])
async def test_delivering_the_same_message_twice_leaves_one_copy(
    fmt: str, store: SchemaStore, tmp_path: Path
) -> None:
    record = indicator()
    first = delivery(store, "Indicator", record)
    # the redelivery after a crash: same message id, later received time
    again = delivery(
        store, "Indicator", record, message_id=first.message_id, received=WHEN + timedelta(days=1)
    )
    sink = FormatSink(fmt, tmp_path)  # type: ignore[arg-type]
    await sink.deliver(first)
    await sink.deliver(again)
    await sink.flush()
    files = sorted(p.name for p in tmp_path.iterdir())
    if fmt == "jsonl":
        lines = [ln for p in tmp_path.glob("*.jsonl") for ln in p.read_text().splitlines()]
        assert len(lines) == 1
        assert json.loads(lines[0])["message_id"] == first.message_id
    else:
        assert files == [f"{first.message_id}.{fmt}.json"]

    # a new sink on the same directory (a restarted subscriber) still knows it
    restarted = FormatSink(fmt, tmp_path)  # type: ignore[arg-type]
    await restarted.deliver(again)
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    if fmt == "jsonl":
        assert sum(len(p.read_text().splitlines()) for p in tmp_path.glob("*.jsonl")) == 1


async def test_stix_output_keeps_id_pattern_tlp_and_retraction_is_a_revoked_version(
    store: SchemaStore, tmp_path: Path
) -> None:
    record = indicator()
    d = delivery(store, "Indicator", record, level="AMBER+STRICT")
    sink = FormatSink("stix", tmp_path)
    await sink.deliver(d)
    path = tmp_path / f"{d.message_id}.stix.json"
    bundle = json.loads(path.read_text())
    validate(bundle)
    (ind,) = [o for o in bundle["objects"] if o["type"] == "indicator"]
    assert ind["id"] == record["source_object_id"]
    assert ind["pattern"] == record["pattern"]
    assert ind["object_marking_refs"] == [tlp.stix_marking_id("AMBER+STRICT")]

    await sink.retract(retraction(d.message_id))
    revoked = json.loads(path.read_text())
    validate(revoked)
    (after,) = [o for o in revoked["objects"] if o["type"] == "indicator"]
    assert after["revoked"] is True and after["id"] == ind["id"]
    assert after["modified"] > ind["modified"]  # a new version of the same object

    await sink.deliver(d)  # a late redelivery must not undo the retraction
    (still,) = [o for o in json.loads(path.read_text())["objects"] if o["type"] == "indicator"]
    assert still["revoked"] is True


async def test_misp_retraction_turns_off_to_ids(store: SchemaStore, tmp_path: Path) -> None:
    record = indicator()
    d = delivery(store, "Indicator", record)
    sink = FormatSink("misp", tmp_path)
    await sink.deliver(d)
    await sink.retract(retraction(d.message_id))
    event = MISPEvent()
    event.load_file(str(tmp_path / f"{d.message_id}.misp.json"))
    (attribute,) = event.attributes
    assert attribute.uuid == record["id"]
    assert attribute.to_ids is False
    assert "jcu:retracted" in {t.name for t in attribute.tags}
    assert "tlp:amber" in {t.name for t in attribute.tags}


@pytest.mark.parametrize("fmt", ["stix", "misp"])
async def test_types_a_format_cannot_express_go_to_json_lines_next_to_it(
    fmt: str, store: SchemaStore, tmp_path: Path
) -> None:
    d = delivery(store, "SituationReport", situation_report())
    sink = FormatSink(fmt, tmp_path)  # type: ignore[arg-type]
    await sink.deliver(d)
    await sink.flush()  # the batch's lines, appended at once
    (path,) = tmp_path.iterdir()
    assert path.suffix == ".jsonl"
    (line,) = path.read_text().splitlines()
    doc = json.loads(line)
    assert doc["message_id"] == d.message_id and doc["payload_type"] == "SituationReport"
    assert doc["record"]["summary"] == d.record["summary"]

    await sink.retract(retraction(d.message_id))  # the retraction follows it there
    await sink.flush()
    keys = [
        (json.loads(x)["message_id"], json.loads(x)["retracted"])
        for x in path.read_text().splitlines()
    ]
    assert keys == [(d.message_id, False), (d.message_id, True)]


def test_stix_objects_of_a_delivery_are_the_indicator_and_its_marking(store: SchemaStore) -> None:
    record = indicator()
    objects = stix_objects_of(delivery(store, "Indicator", record, level="GREEN"))
    assert [o["type"] for o in objects] == ["marking-definition", "indicator"]
    assert objects[1]["id"] == record["source_object_id"]


async def test_taxii_format_fills_the_participants_store(
    store: SchemaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JCU_HOME", str(tmp_path / "home"))
    settings = load_settings()
    sink = make_sink("taxii", "-", "enisa", settings)
    record = indicator()
    d = delivery(store, "Indicator", record)
    other = delivery(store, "SituationReport", situation_report())
    await sink.deliver(d)
    await sink.deliver(d)
    await sink.deliver(other)
    await sink.retract(retraction(d.message_id))
    await sink.flush()
    await sink.close()
    async with TaxiiStore(store_path(settings.home, "enisa"), "enisa") as taxii:
        page = await taxii.query(collection_id_for(TOPIC), ObjectQuery(versions=("all",)))
    versions = [o for o in page.items if o.id == record["source_object_id"]]
    assert [v.body.get("revoked", False) for v in versions] == [False, True]
    (jsonl,) = (settings.home / "taxii" / "enisa-other").glob("*.jsonl")
    assert json.loads(jsonl.read_text())["payload_type"] == "SituationReport"


async def test_a_fan_out_settles_only_when_every_sink_has_it(
    store: SchemaStore, tmp_path: Path
) -> None:
    """Two sinks: the second fails once; the batch is retried whole, and the first, given
    the same delivery again, keeps one copy."""
    from broker.errors import SinkUnavailable
    from broker.pep.sink import JsonlSink
    from connectors.isac.subscriber import FanOutSink

    class Flaky:
        def __init__(self) -> None:
            self.failures, self.got = 1, list[str]()

        async def deliver(self, delivery: Delivery) -> None:
            if self.failures:
                self.failures -= 1
                raise SinkUnavailable("receiver down")
            self.got.append(delivery.message_id)

        async def retract(self, retraction: Retracted) -> None: ...

        async def flush(self) -> None: ...

        async def close(self) -> None: ...

    files, flaky = JsonlSink(tmp_path / "enisa.jsonl"), Flaky()
    fan = FanOutSink([files, flaky])
    item = delivery(store, "Indicator", indicator())
    with pytest.raises(SinkUnavailable):
        await fan.deliver(item)
    await fan.deliver(item)  # the subscriber's retry
    await fan.close()
    assert flaky.got == [item.message_id]
    lines = (tmp_path / "enisa.jsonl").read_text().splitlines()
    assert len(lines) == 1
