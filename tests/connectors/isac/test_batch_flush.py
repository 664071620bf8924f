"""File sinks write a batch at once: durable at `flush`, which a failed fsync leaves to retry
(the subscriber holds the batch), and a retried or redelivered batch writes nothing twice."""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.pep.sink import Delivery
from broker.schemas import SchemaStore
from connectors.isac.subscriber import FormatSink
from tests.broker.pep.records import indicator, situation_report
from tests.connectors.isac.test_subscriber import delivery, retraction


class FailingFsync:
    """`os.fsync` that fails with ENOSPC on its `fail_on`-th call, then works again."""

    def __init__(self, fail_on: int) -> None:
        self.calls = 0
        self.fail_on = fail_on
        self._real: Callable[[int], None] = os.fsync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._real(fd)


def _batch(store: SchemaStore, kind: str, n: int) -> list[Delivery]:
    if kind == "SituationReport":
        return [delivery(store, kind, situation_report()) for _ in range(n)]
    return [delivery(store, kind, indicator()) for _ in range(n)]


def _lines(directory: Path) -> list[str]:
    return [
        json.loads(line)["message_id"]
        for path in sorted(directory.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


@pytest.mark.parametrize("fail_on", [1, 2])
async def test_json_lines_of_a_batch_are_appended_once_after_a_failed_flush(
    store: SchemaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on: int
) -> None:
    """The fsync fails after the batch was written: the append is cut back, the flush raises
    (an outage), and the retried flush writes every line once."""
    sink = FormatSink("jsonl", tmp_path)
    first = _batch(store, "SituationReport", 3)
    for d in first:
        await sink.deliver(d)
    await sink.flush()
    second = _batch(store, "SituationReport", 4)
    for d in second:
        await sink.deliver(d)
    fsync = FailingFsync(fail_on)
    monkeypatch.setattr(os, "fsync", fsync)
    if fail_on == 1:  # the file's fsync
        with pytest.raises(OSError, match="No space"):
            await sink.flush()
        assert _lines(tmp_path) == [d.message_id for d in first]  # nothing half-written
    await sink.flush()  # the subscriber's retry (fail_on 2: a later fsync, not reached)
    monkeypatch.undo()
    expected = [d.message_id for d in first + second]
    assert _lines(tmp_path) == expected
    # the batch comes again after a crash before the commit: nothing written twice
    restarted = FormatSink("jsonl", tmp_path)
    for d in second:
        await restarted.deliver(d)
    await restarted.flush()
    assert _lines(tmp_path) == expected


@pytest.mark.parametrize("fmt", ["stix", "misp", "misp-feed"])
async def test_a_file_batch_is_synced_again_after_a_failed_flush_and_written_once(
    fmt: str, store: SchemaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = FormatSink(fmt, tmp_path)  # type: ignore[arg-type]
    batch = _batch(store, "Indicator", 5)
    for d in batch:
        await sink.deliver(d)
    files = sorted(p.name for p in tmp_path.iterdir())
    fsync = FailingFsync(3)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space"):
        await sink.flush()
    calls_before_retry = fsync.calls
    await sink.flush()  # the retry syncs the batch's files again
    monkeypatch.undo()
    assert fsync.calls - calls_before_retry >= len(batch)
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    suffix = ".stix.json" if fmt == "stix" else ".misp.json"
    assert {f"{d.message_id}{suffix}" for d in batch} <= set(files)

    restarted = FormatSink(fmt, tmp_path)  # type: ignore[arg-type]
    for d in batch:  # redelivered after a crash before the commit
        await restarted.deliver(d)
    await restarted.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


async def test_a_mailbox_batch_is_written_at_flush_and_again_after_a_failure(
    store: SchemaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.siena import parse_case_message
    from connectors.siena.mailbox import MailboxSink
    from tests.connectors.siena.test_format import sample

    sink = MailboxSink(tmp_path)
    cases = []
    for _ in range(3):
        case = parse_case_message(json.dumps(sample(id=str(uuid.uuid4()))))
        cases.append(
            delivery(
                store,
                "CaseMessage",
                case.record,
                message_id=str(case.record["id"]),
                sender=case.record["sender"],
            )
        )
    others = _batch(store, "SituationReport", 2)  # not case messages: JSON lines in other/
    for d in cases + others:
        await sink.deliver(d)
    assert not list(tmp_path.glob("*.json"))  # written by the batch's flush
    fsync = FailingFsync(2)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space"):
        await sink.flush()
    calls_before_retry = fsync.calls
    await sink.flush()  # the subscriber's retry: every case file synced again
    monkeypatch.undo()
    assert fsync.calls - calls_before_retry >= len(cases)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(
        sink.written[d.message_id].name for d in cases
    )
    assert _lines(tmp_path / "other") == [d.message_id for d in others]
    await sink.retract(retraction(cases[0].message_id))
    await sink.close()
    assert (tmp_path / (sink.written[cases[0].message_id].name + ".retracted.json")).exists()
