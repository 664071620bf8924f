"""Publishing a file again after a crash, an interruption or an outage (issue 14): every
object reaches a subscriber once, the summary says what was sent now, what was sent
before, and what was not sent and why; kills and signals land at a chosen item
(`JCU_FAULT=publish.after-item@N[:SIGNAL]`, broker/faults.py), never by timing."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from broker.kafka.scan import scan
from broker.kafka.topics import community_topic
from broker.vocabulary import COMMUNITIES
from tests.broker.pep.kafka_io import drain
from tests.world import World

pytestmark = pytest.mark.kafka
ROWS = 250  # three chunks of the publisher (`--chunk 100`)
KILL_AT = 150  # in the second chunk: 200 rows sent and recorded when it fires


def _csv(tmp_path: Path, name: str = "iocs.csv", rows: int = ROWS) -> tuple[Path, list[str]]:
    a, b = uuid.uuid4().bytes[:2]  # values of this test alone: the session's inboxes are shared
    values = [f"233.{a}.{b // 2 + i // 200}.{i % 200 + 1}" for i in range(rows)]
    path = tmp_path / name
    path.write_text("type,value\n" + "".join(f"ipv4-addr,{v}\n" for v in values))
    return path, values


def _jcu(
    world: World, *args: str, env: dict[str, str] | None = None, org: str = "soc-fr"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env={**world.env(org), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _publish_csv(
    world: World, path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return _jcu(world, "publish", "--as", "soc-fr", "--csv", str(path), "--tlp", "GREEN",
                "--category", "malicious-code", "--chunk", "100", *extra, env=env)  # fmt: skip


def _rows(out: subprocess.CompletedProcess[str]) -> dict[str, list[dict[str, Any]]]:
    by: dict[str, list[dict[str, Any]]] = {}
    for o in json.loads(out.stdout)["objects"]:
        by.setdefault(o["status"], []).append(o)
    return by


async def _copies_on_topics(world: World, ids: set[str]) -> Counter[tuple[str, str]]:
    """How many records of each data topic carry each of these message ids (as key): one
    message has a copy per community it reaches, and never two on one topic."""
    found: Counter[tuple[str, str]] = Counter()
    topics = [community_topic(c, "indicators") for c in COMMUNITIES]
    async for r in scan(world.admin, topics):
        key = r.key.decode() if r.key else ""
        if key in ids:
            found[key, r.topic] += 1
    return found


async def _delivered_values(world: World, org: str, out: Path, values: list[str]) -> Counter[str]:
    _, lines = await drain(world, org, out)
    wanted = set(values)
    return Counter(
        line["record"]["value"] for line in lines if line.get("record", {}).get("value") in wanted
    )


def _progress_files(world: World) -> list[Path]:
    return sorted((world.home("soc-fr") / "progress" / "soc-fr").glob("*.json"))


async def test_a_csv_publish_killed_mid_run_and_run_again_delivers_every_row_once(
    world: World, tmp_path: Path
) -> None:
    path, values = _csv(tmp_path)
    killed = await asyncio.to_thread(
        _publish_csv, world, path, env={"JCU_FAULT": f"publish.after-item@{KILL_AT}"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    progress = [p for p in _progress_files(world) if str(path.resolve()) in p.read_text()]
    (written,) = progress
    state = json.loads(written.read_text())
    assert (state["handled"], state["finished"]) == (200, False)
    assert written.stat().st_mode & 0o777 == 0o600

    again = await asyncio.to_thread(_publish_csv, world, path, "--json")
    assert again.returncode == 0, again.stderr
    rows = _rows(again)
    assert (len(rows["already sent"]), len(rows["published"])) == (200, ROWS - 200)
    assert "stopped after 200 of 250 objects" in again.stderr
    assert "200 already sent" not in again.stderr  # --json: the summary is the JSON
    summary = json.loads(again.stdout)
    assert (summary["already_sent"], summary["published"], summary["not_sent"]) == (200, 50, 0)

    ids = {o["message_id"] for o in rows["already sent"] + rows["published"]}
    assert len(ids) == ROWS
    copies = await _copies_on_topics(world, ids)
    assert {mid for mid, _ in copies} == ids and set(copies.values()) == {1}  # none twice
    receiver = rows["published"][0]["received_by"][0]
    delivered = await _delivered_values(world, receiver, tmp_path / "sink", values)
    assert delivered == Counter({v: 1 for v in values})
    assert json.loads(written.read_text())["finished"] is True


async def test_resume_goes_on_from_a_killed_run_and_refuses_a_changed_file(
    world: World, tmp_path: Path
) -> None:
    path, values = _csv(tmp_path, "resume.csv")
    nothing = await asyncio.to_thread(_publish_csv, world, path, "--resume")
    assert nothing.returncode == 1 and "nothing to resume" in nothing.stderr
    killed = await asyncio.to_thread(
        _publish_csv, world, path, env={"JCU_FAULT": f"publish.after-item@{KILL_AT}"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    changed = tmp_path / "changed"
    changed.mkdir()
    original = path.read_text()
    path.write_text(original + "ipv4-addr,233.255.255.1\n")
    refused = await asyncio.to_thread(_publish_csv, world, path, "--resume")
    assert refused.returncode == 1
    assert "changed since the interrupted run" in refused.stderr.strip().splitlines()[-1]
    path.write_text(original)

    resumed = await asyncio.to_thread(_publish_csv, world, path, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "handled 200 of 250" in resumed.stderr
    rows = _rows(resumed)
    assert (len(rows["already sent"]), len(rows["published"])) == (200, 50)
    receiver = rows["published"][0]["received_by"][0]
    delivered = await _delivered_values(world, receiver, tmp_path / "sink", values)
    assert delivered == Counter({v: 1 for v in values})
    done = await asyncio.to_thread(_publish_csv, world, path, "--resume")
    assert done.returncode == 1 and "the last run of" in done.stderr and "finished" in done.stderr


def _bundle(indicators: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": indicators}


def _indicator(value: str, modified: str = "2026-11-27T10:00:00.000Z") -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created": "2026-11-27T10:00:00.000Z",
        "modified": modified,
        "pattern_type": "stix",
        "pattern": f"[ipv4-addr:value = '{value}']",
        "valid_from": "2026-11-27T10:00:00Z",
        "labels": ["malicious-activity"],
    }


async def test_a_stix_bundle_published_again_sends_nothing_twice_and_a_new_version_goes(
    world: World, tmp_path: Path
) -> None:
    a, b = uuid.uuid4().bytes[:2]
    objects = [_indicator(f"233.{a}.{b}.{i}") for i in range(1, 6)]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(_bundle(objects)))
    stix = ("publish", "--as", "soc-fr", "--stix", str(path), "--tlp", "GREEN",
            "--category", "malicious-code", "--json")  # fmt: skip
    first = await asyncio.to_thread(_jcu, world, *stix)
    assert first.returncode == 0, first.stderr
    sent = {o["source_id"]: o for o in _rows(first)["published"]}
    assert set(sent) == {o["id"] for o in objects}

    # the same bundle again (another bundle id even: one object version is one message)
    path.write_text(json.dumps(_bundle(objects)))
    again = await asyncio.to_thread(_jcu, world, *stix[:-1])
    assert again.returncode == 0, again.stderr
    assert "5 already sent" in again.stderr and "0 published" in again.stderr
    again_json = await asyncio.to_thread(_jcu, world, *stix)
    rows = _rows(again_json)
    assert set(rows) == {"already sent"}
    assert {o["source_id"]: o["message_id"] for o in rows["already sent"]} == {
        k: v["message_id"] for k, v in sent.items()
    }

    newer = dict(objects[0], modified="2026-11-28T09:00:00.000Z")
    path.write_text(json.dumps(_bundle([newer, *objects[1:]])))
    third = await asyncio.to_thread(_jcu, world, *stix)
    assert third.returncode == 0, third.stderr
    rows = _rows(third)
    (fresh,) = rows["published"]
    assert fresh["source_id"] == newer["id"]
    assert fresh["message_id"] != sent[newer["id"]]["message_id"]
    assert len(rows["already sent"]) == 4

    ids = {o["message_id"] for o in sent.values()} | {fresh["message_id"]}
    assert set((await _copies_on_topics(world, ids)).values()) == {1}
    receiver = fresh["received_by"][0]
    _, lines = await drain(world, receiver, tmp_path / "sink")
    got = Counter(
        (line["record"]["id"], line["record"]["modified"])
        for line in lines
        if line.get("record", {}).get("id") in sent
    )
    assert set(got.values()) == {1}  # each version once
    versions = {m for (i, m) in got if i == newer["id"]}
    assert len(versions) == 2  # the old and the new version, each a message of its own


#: A Ctrl-C once the first chunk of a parse's checks is done (of five: 5,000 objects). The
#: parse goes on only once the signal is heard (`faults.point`'s `heard`): an event loop
#: busy connecting must not let it finish first.
CTRL_C_IN_THE_PARSE = {"JCU_FAULT": "parse.after-chunk@1:SIGINT"}


def _big_bundle(path: Path) -> Path:
    a, b = uuid.uuid4().bytes[:2]
    objects = [_indicator(f"234.{a}.{b % 64 + i // 250}.{i % 250}") for i in range(5000)]
    path.write_text(json.dumps(_bundle(objects)))
    return path


def _stopped_in_the_parse(out: subprocess.CompletedProcess[str], path: Path) -> None:
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"jcu: error: interrupted while {path} was being parsed: nothing was sent"
    )
    for noise in ("Traceback", "Task was destroyed", "Unclosed", "KeyboardInterrupt"):
        assert noise not in out.stderr


async def test_ctrl_c_while_a_big_file_is_parsed_stops_there_and_nothing_is_sent(
    world: World, tmp_path: Path
) -> None:
    """The parse is told to give up: it stops at its next chunk of 1,000 objects."""
    path = _big_bundle(tmp_path / "big.json")
    stix = ("publish", "--as", "soc-fr", "--stix", str(path), "--tlp", "GREEN",
            "--category", "malicious-code")  # fmt: skip
    out = await asyncio.to_thread(_jcu, world, *stix, env=CTRL_C_IN_THE_PARSE)
    _stopped_in_the_parse(out, path)
    again = await asyncio.to_thread(_jcu, world, *stix, "--json")
    assert set(_rows(again)) == {"published"}  # none of them had gone


async def test_ctrl_c_while_soc_watch_parses_a_big_file_leaves_it_for_the_next_run(
    world: World, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    path = _big_bundle(drop / "big.json")
    watch = ("soc", "watch", str(drop), "--as", "soc-fr", "--once", "--tlp", "GREEN",
             "--category", "malicious-code")  # fmt: skip
    out = await asyncio.to_thread(_jcu, world, *watch, env=CTRL_C_IN_THE_PARSE)
    _stopped_in_the_parse(out, path)
    assert path.exists()  # neither done nor failed: it is tried again next time
    assert sorted(p.name for p in drop.iterdir()) == ["big.json"]


def _dead_port() -> int:
    """A local port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_with_kafka_unreachable_the_publisher_says_so_and_gives_up_with_the_summary(
    world: World, tmp_path: Path
) -> None:
    path, _ = _csv(tmp_path, "outage.csv", rows=5)
    unreachable = {"KAFKA_BOOTSTRAP": f"127.0.0.1:{_dead_port()}"}
    out = await asyncio.to_thread(
        _publish_csv, world, path, "--give-up-after", "6", env=unreachable
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    said = [line for line in lines if "cannot reach Kafka" in line]
    assert said and "giving up after 6 s" in said[0]
    assert lines[-1].startswith("jcu: error: Kafka at 127.0.0.1:") and "gave up" in lines[-1]
    assert "0 published" in out.stderr and "5 not sent" in out.stderr
    assert "Traceback" not in out.stderr and "Unclosed" not in out.stderr
    as_json = await asyncio.to_thread(
        _publish_csv, world, path, "--json", env={**unreachable, "JCU_GIVE_UP_AFTER": "6"}
    )
    assert as_json.returncode == 1
    summary = json.loads(as_json.stdout)
    assert (summary["not_sent"], summary["published"]) == (5, 0)
    assert "gave up" in summary["stopped"]


async def test_sigint_stops_a_file_publish_with_its_summary_so_far(
    world: World, tmp_path: Path
) -> None:
    path, _ = _csv(tmp_path, "ctrl-c.csv")
    out = await asyncio.to_thread(
        _publish_csv, world, path, env={"JCU_FAULT": f"publish.after-item@{KILL_AT}:SIGINT"}
    )
    assert out.returncode == 1, out.stderr
    assert "200 published" in out.stderr and "50 not sent (interrupted" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("jcu: error: interrupted")
    for noise in ("Traceback", "Task was destroyed", "Unclosed", "KeyboardInterrupt"):
        assert noise not in out.stderr
    again = await asyncio.to_thread(_publish_csv, world, path, "--json")
    rows = _rows(again)
    assert (len(rows["already sent"]), len(rows["published"])) == (200, 50)


async def test_ctrl_c_during_an_outage_stops_within_seconds_with_the_summary(
    world: World, tmp_path: Path
) -> None:
    path, _ = _csv(tmp_path, "outage-ctrl-c.csv", rows=3)
    env = {**world.env("soc-fr"), "KAFKA_BOOTSTRAP": f"127.0.0.1:{_dead_port()}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker.cli", "publish", "--as", "soc-fr", "--csv", str(path),
         "--tlp", "GREEN", "--category", "malicious-code", "--give-up-after", "600"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    first = await asyncio.to_thread(proc.stderr.readline)  # waits for the outage to be said
    assert "cannot reach Kafka" in first, first
    proc.send_signal(signal.SIGINT)
    try:
        _, rest = await asyncio.to_thread(proc.communicate, timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("Ctrl-C during an outage did not stop jcu publish") from None
    assert proc.returncode == 1
    assert "3 not sent (interrupted" in rest
    assert rest.strip().splitlines()[-1].startswith("jcu: error: interrupted")
    assert "Traceback" not in rest and "Task was destroyed" not in rest


async def test_a_killed_soc_watch_leaves_its_file_and_the_next_run_sends_only_the_rest(
    world: World, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    path, values = _csv(drop, "feed.csv")
    watch = ("soc", "watch", str(drop), "--as", "soc-fr", "--once", "--tlp", "GREEN",
             "--category", "malicious-code", "--chunk", "100")  # fmt: skip
    killed = await asyncio.to_thread(
        _jcu, world, *watch, env={"JCU_FAULT": f"publish.after-item@{KILL_AT}"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert path.exists()  # not done: it stays for the next run
    again = await asyncio.to_thread(_jcu, world, *watch)
    assert again.returncode == 0, again.stderr
    summary = json.loads((drop / "done" / "feed.csv.summary.json").read_text())
    assert (summary["already_sent"], summary["published"]) == (200, 50)
    assert "200 already sent" in again.stderr
    receiver = next(o for o in summary["objects"] if o["status"] == "published")["received_by"][0]
    delivered = await _delivered_values(world, receiver, tmp_path / "sink", values)
    assert delivered == Counter({v: 1 for v in values})
    assert (drop / "done").stat().st_mode & 0o777 == 0o700
