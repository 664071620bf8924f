"""Access control on the server: the operator sees the platform, an auditor of enisa sees
enisa's own decisions only, and gets 403 for anything else on pages and JSON alike."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.connectors.console.fixture import (
    AUDITOR,
    NODE,
    OPERATOR,
    Console,
    challenge_on,
    sign_in_token,
)

pytestmark = pytest.mark.kafka


def test_nothing_without_a_login(console: Console) -> None:
    c = console.client(None)
    assert c.get("/api/flows").status_code == 401
    page = c.get("/audit?since=24h")
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    bad = c.post("/login", data={"user": OPERATOR[0], "password": "wrong password here"})
    assert bad.status_code == 401
    assert "wrong account name or password" in bad.text
    assert c.get("/api/flows").status_code == 401


def test_operator_sees_every_enforcement_point(console: Console) -> None:
    c = console.client(OPERATOR)
    audit = c.get("/api/audit", params={"since": "24h"}).json()
    eps = {log["enforcement_point"] for log in audit["logs"]}
    assert {"soc-fr/publish", "cert-eu/publish", "enisa/publish", "enisa/receive"} <= eps
    red = c.get(f"/api/messages/{console.traffic.mid('red')}").json()
    orgs = {o["organisation"]: o["decision"] for o in red["organisations"]}
    assert orgs["cert-eu"] == "allow" and orgs["isac-energy"] == "allow"
    assert orgs["enisa"] == "deny"


def test_auditor_sees_only_its_own_organisation(console: Console) -> None:
    c = console.client(AUDITOR)
    t = console.traffic
    # a message enisa may not receive: 403 on the JSON twin and on the page
    for path in (f"/api/messages/{t.mid('red')}", f"/messages/{t.mid('red')}"):
        r = c.get(path)
        assert r.status_code == 403, (path, r.status_code)
    # another organisation's log: 403, page and JSON
    for path in ("/api/audit?ep=soc-fr/publish", "/audit?ep=soc-fr/publish"):
        assert c.get(path).status_code == 403
    proof_of_other = None
    op = console.client(OPERATOR).get(f"/api/messages/{t.mid('red')}").json()
    proof_of_other = op["decisions"][0]["decision_id"]
    assert c.get(f"/api/proofs/{proof_of_other}").status_code == 403
    # what it does see: its own logs, and decisions about it that allowed it a message
    audit = c.get("/api/audit", params={"since": "24h"}).json()
    assert audit["logs"] and all(
        log["enforcement_point"].startswith(f"{NODE}/") for log in audit["logs"]
    )
    flows = c.get("/api/flows", params={"since": "24h"}).json()
    assert flows["flows"] and all(NODE in (f["from"], f["to"]) for f in flows["flows"])
    story = c.get(f"/api/messages/{t.mid('clear')}").json()
    assert {o["organisation"] for o in story["organisations"]} == {NODE}
    listed = c.get("/api/messages", params={"since": "24h"}).json()["messages"]
    ids = {m["message_id"] for m in listed}
    assert t.mid("clear") in ids and t.mid("red") not in ids
    for m in c.get("/api/audit", params={"since": "24h"}).json()["recent"]:
        assert m["enforcement_point"].startswith(f"{NODE}/") or m["organisation"] == NODE


def test_bad_parameters_get_one_clear_error(console: Console) -> None:
    c = console.client(OPERATOR)
    r = c.get("/api/flows", params={"since": "yesterday"})
    assert r.status_code == 400
    assert "ISO 8601" in r.json()["error"]
    r = c.get("/api/policy", params={"from": "nobody", "tlp": "RED", "type": "Indicator"})
    assert r.status_code == 400 and "not a registered organisation" in r.json()["error"]


# -- auditors of other organisations: signed in with their own node's key --------------

OTHER = "eeas-intcen"  # an auditor of another organisation than the console's node's


def test_an_auditor_of_another_organisation_signs_in_with_its_node_key(
    console: Console,
) -> None:
    t = console.traffic
    c = console.signed_in(OTHER)
    flows = c.get("/api/flows", params={"since": "24h"}).json()
    assert flows["flows"] and all(OTHER in (f["from"], f["to"]) for f in flows["flows"])
    story = c.get(f"/api/messages/{t.mid('incident')}").json()
    assert {o["organisation"] for o in story["organisations"]} == {OTHER}
    assert story["organisations"][0]["decision"] in ("allow", "redact")
    listed = {m["message_id"] for m in c.get("/api/messages?since=24h").json()["messages"]}
    assert t.mid("incident") in listed and t.mid("red") not in listed
    audit = c.get("/api/audit", params={"since": "24h"}).json()
    assert audit["logs"] and all(
        log["enforcement_point"].startswith(f"{OTHER}/") for log in audit["logs"]
    )
    # a third organisation's message and log, the console node's own report: 403
    for path in (f"/api/messages/{t.mid('red')}", f"/messages/{t.mid('red')}"):
        assert c.get(path).status_code == 403, path
    for path in ("/api/audit?ep=soc-fr/publish", "/api/audit?ep=enisa/receive"):
        assert c.get(path).status_code == 403, path
    report = c.get("/api/sitrep", params={"since": "24h"})
    assert report.status_code == 403 and "on its own node" in report.json()["error"]


def test_a_refused_sign_in_says_why_on_the_page(console: Console) -> None:
    c = httpx.Client(base_url=console.url, timeout=30, follow_redirects=False)
    token = sign_in_token(console.world, OTHER, console.challenge(c))
    assert c.post("/login/key", data={"token": token}).status_code == 303
    again = httpx.Client(base_url=console.url, timeout=30, follow_redirects=False)
    page = again.post("/login/key", data={"token": token})
    assert page.status_code == 401
    assert 'data-reason="challenge-reused"' in page.text and "good once" in page.text
    assert again.get("/api/flows").status_code == 401  # no session from a refused token
    page = again.post("/login/key", data={"token": "not a token at all"})
    assert page.status_code == 401 and 'data-reason="malformed-token"' in page.text
    challenge_on(page.text)  # the refusal page offers a fresh challenge


def test_a_node_signs_only_as_its_own_organisation(console: Console) -> None:
    c = httpx.Client(base_url=console.url, timeout=30)
    out = subprocess.run(
        [sys.executable, "-m", "broker.cli", "console", "sign-in", "--as", "cert-eu",
         console.challenge(c)],
        env=console.world.env(OTHER),
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode != 0 and "holds no key of cert-eu" in out.stderr
    assert not out.stdout


def test_the_operator_sees_every_message_type_platform_wide(console: Console) -> None:
    """Types come from every community's envelope headers, not only enisa's topics: eda's
    report to pesco alone travels on the defence topics only."""
    t = console.traffic
    c = console.client(OPERATOR)
    listed = {
        m["message_id"]: m for m in c.get("/api/messages", params={"since": "24h"}).json()[
            "messages"]
    }  # fmt: skip
    assert listed[t.mid("defence")]["type"] == "SituationReport"
    assert listed[t.mid("defence")]["sender"] == "eda"
    assert listed[t.mid("red")]["type"] == "Indicator"
    # acts the logs record (crises, registry snapshots) are no messages
    assert not [mid for mid in listed if mid.startswith(("crisis:", "registry:"))]
    page = c.get("/messages", params={"since": "24h", "type": "SituationReport"})
    assert t.mid("defence") in page.text and t.mid("red") not in page.text
    # the auditor of enisa does not see it at all
    mine = console.client(AUDITOR).get("/api/messages", params={"since": "24h"}).json()
    assert t.mid("defence") not in {m["message_id"] for m in mine["messages"]}


def test_health_says_its_history_is_since_the_console_started(console: Console) -> None:
    c = console.client(OPERATOR)
    history = c.get("/api/health").json()["history"]
    assert history["console_started"] and history["kept"] == 240
    assert "since the console started" in history["note"]
    assert "since the console started" in c.get("/health").text


def test_the_crisis_board_names_who_declared_an_ended_crisis(console: Console) -> None:
    """jcu.control keeps only csirts-network's end; eu-cyclone's declaration is in its
    control log."""
    board = console.client(OPERATOR).get("/api/crisis").json()
    past = {c["incident"]: c for c in board["past"]}
    ended = past[console.traffic.ended]
    assert ended["state"] == "ended"
    assert (ended["declared_by"], ended["ended_by"]) == ("eu-cyclone", "csirts-network")
    assert ended["declared"] < ended["ended"] and ended["member_states"] == ["DE", "FR"]
    assert ended["expires"] > ended["declared"]
    active = {c["incident"]: c for c in board["active"]}
    assert active[console.traffic.incident]["declared_by"] == "eu-cyclone"


def test_the_audit_timeline_marks_both_acts_of_an_ended_crisis(console: Console) -> None:
    markers = console.client(OPERATOR).get("/api/audit", params={"since": "24h"}).json()[
        "timeline"]["markers"]  # fmt: skip
    labels = {m["label"] for m in markers if m["kind"] == "crisis"}
    ended = console.traffic.ended
    assert f"crisis {ended} declared by eu-cyclone" in labels
    assert f"crisis {ended} ended by csirts-network" in labels
    assert f"crisis {console.traffic.incident} declared by eu-cyclone" in labels
