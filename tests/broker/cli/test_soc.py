"""Bad SOC input through the CLI (`jcu publish --stix/--csv`, `jcu soc watch`): one clear line,
the good rest published, skipped objects listed with the reason, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.roundtrip import FIXTURES, isolate
from tests.world import World

pytestmark = pytest.mark.kafka

SAMPLE = FIXTURES / "stix" / "operation-web.json"


def jcu(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env=world.env_for(args),
        capture_output=True,
        text=True,
        timeout=120,
    )


def publish(world: World, option: str, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return jcu(world, "publish", "--as", "soc-fr", option, str(path), "--tlp", "GREEN",
               "--json", *extra)  # fmt: skip


def indicator(value: str) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created": "2026-11-27T10:00:00.000Z",
        "modified": "2026-11-27T10:00:00.000Z",
        "pattern_type": "stix",
        "pattern": f"[ipv4-addr:value = '{value}']",
        "valid_from": "2026-11-27T10:00:00Z",
    }


def assert_one_clear_line(out: subprocess.CompletedProcess[str], words: str) -> None:
    assert out.returncode == 1
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("jcu: error: ") and words in line


def test_truncated_json_is_one_clear_error(world: World, tmp_path: Path) -> None:
    bad = tmp_path / "cut.json"
    bad.write_text(SAMPLE.read_text()[:200])
    assert_one_clear_line(publish(world, "--stix", bad), "looks truncated")


def test_a_file_over_the_limit_is_refused_before_reading(world: World, tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # 50 MB (sparse: cheap to make)
    assert_one_clear_line(publish(world, "--stix", big), "larger than the limit")


def test_unknown_object_type_is_skipped_and_the_rest_published(
    world: World, tmp_path: Path
) -> None:
    good = indicator("192.0.2.1")
    bundle = {
        "type": "bundle",
        "id": f"bundle--{uuid.uuid4()}",
        "objects": [good, {"type": "no-such-thing", "id": f"no-such-thing--{uuid.uuid4()}"}],
    }
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(bundle))
    out = publish(world, "--stix", path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    rows = {o["source_id"]: o for o in summary["objects"]}
    assert rows[good["id"]]["status"] == "published"
    assert rows[good["id"]]["recipients"] > 0
    uuid.UUID(rows[good["id"]]["message_id"])
    (skipped,) = [o for o in summary["objects"] if o["status"] == "skipped"]
    assert "unknown STIX object type 'no-such-thing'" in skipped["reason"]
    assert (summary["published"], summary["skipped"]) == (1, 1)


def test_a_bad_csv_row_is_skipped_with_its_line(world: World, tmp_path: Path) -> None:
    path = tmp_path / "iocs.csv"
    path.write_text(
        "type,value,tlp\n"
        "ipv4-addr,192.0.2.10,AMBER\n"
        "ipv4-addr,not-an-address,GREEN\n"
        "domain-name,bad.example,\n"
    )
    out = publish(world, "--csv", path, "--category", "malicious-code")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    statuses = {o["source_id"]: o["status"] for o in summary["objects"]}
    assert statuses == {"line 2": "published", "line 3": "skipped", "line 4": "published"}
    (bad,) = [o for o in summary["objects"] if o["status"] == "skipped"]
    assert "not-an-address" in bad["reason"] or "ipv4" in bad["reason"].lower()
    tlps = {o["source_id"]: o.get("tlp") for o in summary["objects"]}
    assert tlps["line 2"] == "AMBER" and tlps["line 4"] == "GREEN"  # default only where none


def test_exactly_one_input_is_required(world: World, tmp_path: Path) -> None:
    out = jcu(world, "publish", "--as", "soc-fr", "--stix", str(SAMPLE), "--csv", str(SAMPLE))
    assert out.returncode == 2 and "exactly one input" in out.stderr
    assert "Traceback" not in out.stderr


def test_watch_once_moves_good_files_to_done_and_bad_ones_to_failed(
    world: World, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "good.csv").write_text("type,value\nipv4-addr,192.0.2.77\n")
    (drop / "bad.json").write_text('{"type": "bundle", "objects": [')
    (drop / ".uploading.json").write_text("{")  # hidden: not touched
    out = jcu(world, "soc", "watch", str(drop), "--as", "soc-fr", "--tlp", "GREEN", "--once")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert sorted(p.name for p in drop.iterdir()) == [".uploading.json", "done", "failed"]
    summary = json.loads((drop / "done" / "good.csv.summary.json").read_text())
    assert summary["published"] == 1 and summary["objects"][0]["status"] == "published"
    assert (drop / "done" / "good.csv").exists()
    assert (drop / "failed" / "bad.json").exists()
    reason = (drop / "failed" / "bad.json.reason.txt").read_text()
    assert "invalid JSON" in reason and "truncated" in reason
    assert "bad.json failed" in out.stderr


def _bundle_file(tmp_path: Path, *objects: dict[str, Any]) -> Path:
    path = tmp_path / f"{uuid.uuid4().hex}.json"
    path.write_text(
        json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects})
    )
    return path


def _received(world: World, org: str, out: Path, group: str) -> subprocess.CompletedProcess[str]:
    got = jcu(world, "subscribe", "--as", org, "--format", "stix", "--out", str(out),
              "--once", "--group", group, "--json")  # fmt: skip
    assert got.returncode == 0, got.stderr
    return got


def test_a_dry_run_says_who_would_get_what_and_sends_nothing(world: World, tmp_path: Path) -> None:
    ind = indicator("192.0.2.200")
    path = _bundle_file(tmp_path, ind)
    out = jcu(world, "publish", "--as", "soc-fr", "--stix", str(path), "--tlp", "AMBER",
              "--category", "malicious-code", "--to", "enisa,isac-finance", "--dry-run",
              "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["dry_run"] is True
    (row,) = summary["objects"]
    assert row["status"] == "would publish" and row["message_id"] is None
    assert row["received_by"] == ["enisa", "isac-finance"]
    withheld = {d["org"]: d["rules"] for d in row["withheld_from"]}
    assert withheld["cert-eu"][0] == "named-recipients-only"
    # and nothing went out: a new subscriber of enisa finds no such object
    _received(world, "enisa", tmp_path / "out", world.group("enisa"))
    assert not (tmp_path / "out" / f"{ind['id']}.stix.json").exists()
    table = jcu(world, "publish", "--as", "soc-fr", "--stix", str(path), "--tlp", "AMBER",
                "--category", "malicious-code", "--to", "enisa", "--dry-run")  # fmt: skip
    assert table.returncode == 0 and "would publish" in table.stdout and "enisa" in table.stdout


def test_a_file_that_reaches_nobody_says_why_per_object_and_exits_1(
    world: World, tmp_path: Path
) -> None:
    amber, red = indicator("192.0.2.201"), indicator("192.0.2.202")
    red["object_marking_refs"] = ["marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"]
    path = _bundle_file(tmp_path, amber, red)
    out = jcu(
        world, "publish", "--as", "soc-fr", "--stix", str(path), "--tlp", "AMBER", "--json"
    )  # fmt: skip  (AMBER without a category, RED without a named recipient)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    (line,) = [x for x in out.stderr.splitlines() if x.startswith("jcu: error:")]
    assert "nothing reached any organisation" in line and "2 objects withheld" in line
    rows = {o["source_id"]: o for o in json.loads(out.stdout)["objects"]}
    for row in rows.values():
        assert row["status"] == "withheld" and row["recipients"] == 0
        assert row["withheld_from"] and all(d["rules"] for d in row["withheld_from"])
    enisa = {d["org"]: d for d in rows[amber["id"]]["withheld_from"]}["enisa"]
    assert enisa["rules"][0] == "default-deny"
    assert "tlp-amber-mandate" in enisa["rules"]


def test_retract_a_whole_publication_by_file_or_event(world: World, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    stix = tmp_path / "op.json"
    stix.write_text(isolate((FIXTURES / "stix" / "operation-web.json").read_text(), run))
    sent = jcu(world, "publish", "--as", "soc-fr", "--stix", str(stix), "--tlp", "GREEN",
               "--category", "intrusion-attempts", "--to", "enisa", "--json")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    ids = [o["source_id"] for o in json.loads(sent.stdout)["objects"]]
    group, out = world.group("enisa"), tmp_path / "enisa"
    _received(world, "enisa", out, group)
    assert all((out / f"{oid}.stix.json").exists() for oid in ids)

    gone = jcu(world, "retract", "--as", "soc-fr", "--file", str(stix), "--json")
    assert gone.returncode == 0, gone.stderr
    assert len(json.loads(gone.stdout)["retracted"]) == len(ids)
    _received(world, "enisa", out, group)
    assert not any((out / f"{oid}.stix.json").exists() for oid in ids)
    again = jcu(world, "retract", "--as", "soc-fr", "--file", str(stix))
    assert again.returncode == 1 and "no record here" in again.stderr

    misp = tmp_path / "event.json"
    misp.write_text(isolate((FIXTURES / "misp" / "blackwidow-event.json").read_text(), run))
    event_uuid = json.loads(misp.read_text())["Event"]["uuid"]
    sent = jcu(world, "publish", "--as", "soc-fr", "--misp", str(misp), "--to", "enisa")
    assert sent.returncode == 0, sent.stderr
    gone = jcu(world, "retract", "--as", "soc-fr", "--event", event_uuid, "--json")
    assert gone.returncode == 0, gone.stderr
    (one,) = json.loads(gone.stdout)["retracted"]
    assert one["copies"][0]["recipients"] == ["enisa"]
