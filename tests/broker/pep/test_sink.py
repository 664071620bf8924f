"""The JSON-lines sink: the same lines as `json.dumps(delivery.to_json())`, once per id."""

from __future__ import annotations

import asyncio
import io
import json
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from broker.envelope import Labels
from broker.pep._tail import RecentKeys
from broker.pep.sink import Delivery, JsonlSink, Retracted

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.uuids(),
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(timezones=st.sampled_from([UTC, None])),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=10), inner, max_size=4),
    ),
    max_leaves=20,
)
_records = st.dictionaries(st.text(max_size=12), _values, max_size=8)


def _delivery(record: dict[str, Any], message_id: str | None = None) -> Delivery:
    return Delivery(
        participant="enisa",
        message_id=message_id or str(uuid.uuid4()),
        sender="soc-fr",
        payload_type="Indicator",
        record=record,
        labels=Labels.of("AMBER", categories=["malicious-code"], member_states=["FR"]),
        topic="jcu.civilian.indicators",
        partition=1,
        offset=7,
        created=T0,
        received=T0 + timedelta(seconds=1),
        redacted_fields=("reporter",),
        obligations=("no-onward-sharing",),
    )


@given(_records)
def test_json_line_is_the_json_of_to_json(record: dict[str, Any]) -> None:
    delivery = _delivery(record)
    expected = json.dumps(delivery.to_json(), sort_keys=True, ensure_ascii=False)
    assert delivery.json_line() == expected


def test_json_line_refuses_what_to_json_cannot_write_either() -> None:
    delivery = _delivery({"odd": {1, 2}})
    for render in (
        delivery.json_line,
        lambda: json.dumps(delivery.to_json(), sort_keys=True, ensure_ascii=False),
    ):
        try:
            render()
        except TypeError:
            continue
        raise AssertionError("a set is not JSON")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_sink_writes_each_delivery_as_its_json_line() -> None:
    out = io.StringIO()
    sink = JsonlSink(out)
    deliveries = [_delivery({"value": f"c2-{i}.example.net"}) for i in range(3)]

    async def run() -> None:
        for d in deliveries:
            await sink.deliver(d)
        await sink.flush()

    asyncio.run(run())
    assert out.getvalue() == "".join(d.json_line() + "\n" for d in deliveries)
    assert sink.count == 3


def test_the_file_holds_every_delivery_after_flush(tmp_path: Path) -> None:
    path = tmp_path / "enisa.jsonl"
    sink = JsonlSink(path)
    deliveries = [_delivery({"value": f"c2-{i}.example.net"}) for i in range(3)]

    async def run() -> None:
        for d in deliveries:
            await sink.deliver(d)
        await sink.flush()

    asyncio.run(run())
    assert path.read_text(encoding="utf-8") == "".join(d.json_line() + "\n" for d in deliveries)
    asyncio.run(sink.close())


def test_a_redelivery_writes_no_second_line_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "enisa.jsonl"
    delivery = _delivery({"value": "x"}, message_id="m-1")

    async def run() -> None:
        first = JsonlSink(path)
        await first.deliver(delivery)
        await first.deliver(delivery)  # the same batch
        await first.close()
        again = JsonlSink(path)
        await again.deliver(delivery)  # after a crash before the offset commit
        await again.retract(
            Retracted("enisa", "m-1", "soc-fr", "false positive", T0 + timedelta(hours=1))
        )
        await again.retract(
            Retracted("enisa", "m-1", "soc-fr", "false positive", T0 + timedelta(hours=1))
        )
        await again.close()

    asyncio.run(run())
    lines = _lines(path)
    assert [(o["message_id"], bool(o.get("retracted"))) for o in lines] == [
        ("m-1", False),
        ("m-1", True),
    ]


def test_a_torn_tail_is_cut_before_the_next_batch(tmp_path: Path) -> None:
    path = tmp_path / "enisa.jsonl"
    kept = _delivery({"value": "kept"})
    path.write_text(kept.json_line() + '\n{"message_id": "tor', encoding="utf-8")
    sink = JsonlSink(path)
    new = _delivery({"value": "new"})

    async def run() -> None:
        await sink.deliver(kept)
        await sink.deliver(new)
        await sink.close()

    asyncio.run(run())
    assert [o["message_id"] for o in _lines(path)] == [kept.message_id, new.message_id]


def test_a_long_history_costs_the_sink_bounded_memory_at_open(tmp_path: Path) -> None:
    """100,000 lines (about 36 MiB) already in the file: opening the sink and writing one
    more reads only the end of it and keeps the last `remember` keys. Bound: 8 MiB of
    Python allocations (the whole file read and every id kept was over 90 MiB)."""
    path = tmp_path / "enisa.jsonl"
    line = _delivery({"value": "x" * 200}).json_line()
    with path.open("w", encoding="utf-8") as f:
        for i in range(100_000):
            f.write(line.replace('"message_id": "', f'"message_id": "{i:06d}-', 1) + "\n")
    newest = f"{99_999:06d}-"
    first = f"{0:06d}-"

    async def run() -> tuple[bool, bool]:
        sink = JsonlSink(path, remember=10_000)
        tracemalloc.start()
        try:
            fresh = _delivery({"value": "new"})
            await sink.deliver(fresh)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"
        print(f"sink open over 100,000 lines: peak {peak / 2**20:.1f} MiB")
        assert len(sink._seen) == 10_000  # the last 9,999 of the file and the new one
        remembered = any(str(k[0]).startswith(newest) for k in sink._seen._keys)
        forgotten = not any(str(k[0]).startswith(first) for k in sink._seen._keys)
        await sink.close()
        return remembered, forgotten

    remembered, forgotten = asyncio.run(run())
    assert remembered and forgotten


def test_a_redelivery_of_the_last_batches_is_still_dropped_after_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "enisa.jsonl"
    batch = [_delivery({"value": i}) for i in range(50)]

    async def run() -> None:
        first = JsonlSink(path, remember=20)
        for d in batch:
            await first.deliver(d)
        await first.close()
        again = JsonlSink(path, remember=20)
        for d in batch[-20:]:  # the batch the ledger had not settled comes again
            await again.deliver(d)
        await again.close()

    asyncio.run(run())
    assert [o["message_id"] for o in _lines(path)] == [d.message_id for d in batch]


@given(
    st.lists(st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=40),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
    st.integers(1, 64),
    st.integers(1, 50),
)
def test_last_lines_are_the_files_last_complete_lines_whatever_the_chunk(
    lines: list[bytes], torn: bytes, chunk: int, limit: int
) -> None:
    import tempfile

    from broker.pep import _tail

    whole = [x for x in lines if x]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.jsonl"
        path.write_bytes(b"".join(x + b"\n" for x in lines) + torn)
        saved = _tail._CHUNK
        _tail._CHUNK = chunk
        try:
            got = list(_tail.last_lines(path, limit))
            _tail.drop_torn_tail(path)
        finally:
            _tail._CHUNK = saved
        assert got == list(reversed(whole))[:limit]
        assert path.read_bytes() == b"".join(x + b"\n" for x in lines)


def test_recent_keys_keep_the_newest() -> None:
    keys = RecentKeys(3)
    for k in "abcad":
        keys.add(k)
    assert [k for k in "abcd" if k in keys] == ["a", "c", "d"]
    assert len(keys) == 3
