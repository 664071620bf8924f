"""The console in a real browser (headless Chromium): log in as the operator and as an
auditor of enisa, every page renders its chart, the story of a message shows what
`jcu audit query` shows, the what-if form answers as `jcu policy explain`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.console.browser import artefacts, chromium_path
from tests.connectors.console.fixture import (
    AUDITOR,
    NODE,
    OPERATOR,
    Console,
    challenge_on,
    sign_in_token,
)

pytestmark = pytest.mark.kafka

#: page -> the chart(s) it must draw
CHARTS = {
    "flows": ["#chart-organisations svg[data-chart=heatmap]", "#chart-communities svg"],
    "audit": ["#chart-timeline svg[data-chart=lines] polyline.series"],
    "health": [
        "#chart-lag svg[data-chart=lines]",
        "#chart-lag-seconds svg[data-chart=lines]",
        "#chart-dead-letters svg[data-chart=bars]",
    ],
    "sitrep": ["#sitrep svg[data-chart=bars] rect.bar"],
}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = artefacts(tmp_path_factory)
    print(f"\nconsole screenshots: {out}")
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _login(browser: Any, console: Console, who: tuple[str, str]) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{console.url}/flows?since=24h")
    assert "/login" in page.url  # sent to log in first
    page.fill("#user", who[0])
    page.fill("#password", who[1])
    page.click("#login-button")
    page.wait_for_url("**/flows?since=24h")
    return page


def _jcu(console: Console, *args: str) -> Any:
    """`jcu ARGS` on the console's node; `jcu audit` as an auditor (only auditors read the
    audit topics)."""
    env = console.world.auditor_env(NODE) if args[0] == "audit" else console.world.env(NODE)
    out = subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_operator_pages_render_their_charts(console: Console, browser: Any, shots: Path) -> None:
    page = _login(browser, console, OPERATOR)
    assert page.get_attribute("#viewer", "data-role") == "operator"
    for name in ("flows", "messages", "audit", "health", "policy", "crisis", "sitrep"):
        page.goto(f"{console.url}/{name}?since=24h")
        assert page.locator("h1").first.is_visible()
        for selector in CHARTS.get(name, []):
            assert page.locator(selector).count() > 0, (name, selector)
        page.screenshot(path=str(shots / f"operator-{name}.png"), full_page=True)
    # the flows heat map has a cell for soc-fr -> enisa with the messages counted
    page.goto(f"{console.url}/flows?since=24h")
    cell = page.locator('rect.cell[data-row="soc-fr"][data-col="enisa"]')
    assert int(cell.get_attribute("data-value") or 0) >= 1
    # the crisis board shows the traffic's crisis, active, declared by eu-cyclone
    page.goto(f"{console.url}/crisis")
    row = page.locator(f'#crisis-active tr[data-incident="{console.traffic.incident}"]')
    assert "eu-cyclone" in row.inner_text() and "active" in row.inner_text()
    # the situation report says what it is built from
    page.goto(f"{console.url}/sitrep?since=24h")
    assert "entitled to receive" in page.inner_text("#entitlement")
    assert page.locator("#sitrep-generated").inner_text()
    page.close()


def test_the_story_shows_the_decisions_the_cli_shows(
    console: Console, browser: Any, shots: Path
) -> None:
    mid = console.traffic.mid("incident")
    page = _login(browser, console, OPERATOR)
    page.goto(f"{console.url}/messages/{mid}")
    page.screenshot(path=str(shots / "operator-story.png"), full_page=True)
    shown = {
        row.get_attribute("data-org"): (
            row.get_attribute("data-decision"),
            row.locator("td.rules").inner_text(),
        )
        for row in page.locator("#story tbody tr").all()
    }
    cli = _jcu(console, "audit", "query", "--message", mid, "--keys", str(console.keys), "--json")
    published = {r["organisation"]: r for r in cli if r["action"] == "publish"}
    assert published and len(shown) >= len(published)
    for org, r in published.items():
        assert shown[org] == (r["decision"], ", ".join(r["rule_ids"])), org
    assert any(
        d == "redact" for d, _ in shown.values()
    )  # personal data: someone got a copy without
    # delivered: eeas-intcen and enisa received it (their receive decisions)
    delivery = page.locator('#story tr[data-org="eeas-intcen"] td.delivery').inner_text()
    assert delivery.startswith("delivered")
    # every proof was verified in the backend, and can be downloaded
    proofs = page.locator("#proofs tbody tr")
    assert proofs.count() > 0
    sealed = page.locator('#proofs tr[data-verified="yes"]').count()
    assert sealed >= 1
    with page.expect_download() as dl:
        page.locator("#proofs a[download]").first.click()
    proof = json.loads(Path(dl.value.path()).read_text())
    assert proof["record"]["decision_id"] and "inclusion_proof" in proof
    page.close()


def test_what_if_answers_as_policy_explain(console: Console, browser: Any, shots: Path) -> None:
    page = _login(browser, console, OPERATOR)
    page.goto(f"{console.url}/policy")
    page.select_option("#wf-from", "cert-eu")
    page.fill("#wf-type", "IncidentReport")
    page.select_option("#wf-tlp", "AMBER")
    page.select_option("#wf-category", ["fraud", "malicious-code"])
    page.fill("#wf-incident", "INC-WHATIF-1")
    page.fill("#wf-ms", "FR,DE")
    page.check("#wf-pd")
    page.check("#wf-crisis")
    page.click("#wf-submit")
    page.wait_for_selector("#whatif-result")
    page.screenshot(path=str(shots / "operator-policy-whatif.png"), full_page=True)
    shown = {
        row.get_attribute("data-org"): (
            row.get_attribute("data-decision"),
            row.locator("td.rules").inner_text(),
        )
        for row in page.locator("#whatif-result tbody tr").all()
    }
    cli = _jcu(
        console,
        "policy",
        "explain",
        "--from",
        "cert-eu",
        "--type",
        "IncidentReport",
        "--tlp",
        "AMBER",
        "--category",
        "fraud",
        "--category",
        "malicious-code",
        "--incident",
        "INC-WHATIF-1",
        "--member-states",
        "FR,DE",
        "--personal-data",
        "--crisis",
        "--json",
    )
    assert shown == {d["org"]: (d["decision"], ", ".join(d["rules"])) for d in cli}
    assert {"allow", "deny"} <= {d for d, _ in shown.values()}
    page.close()


def test_auditor_sees_only_enisa(console: Console, browser: Any, shots: Path) -> None:
    page = _login(browser, console, AUDITOR)
    assert page.get_attribute("#viewer", "data-org") == NODE
    page.screenshot(path=str(shots / "auditor-flows.png"), full_page=True)
    cells = page.locator("#chart-organisations rect.cell:not([data-value='0'])").all()
    assert cells
    for cell in cells:  # every flow drawn has enisa at one end
        assert NODE in (cell.get_attribute("data-row"), cell.get_attribute("data-col"))
    page.goto(f"{console.url}/audit?since=24h")
    page.screenshot(path=str(shots / "auditor-audit.png"), full_page=True)
    eps = [r.get_attribute("data-ep") for r in page.locator("#logs tbody tr[data-ep]").all()]
    assert eps and all((ep or "").startswith(f"{NODE}/") for ep in eps)
    page.goto(f"{console.url}/messages?since=24h")
    listed = page.locator("#messages tbody tr[data-message]").all()
    ids = {r.get_attribute("data-message") for r in listed}
    assert console.traffic.mid("clear") in ids
    assert console.traffic.mid("red") not in ids
    # a direct URL to another organisation's decisions: 403, on the page and the JSON twin
    resp = page.goto(f"{console.url}/messages/{console.traffic.mid('red')}")
    assert resp is not None and resp.status == 403
    assert "not within the view of auditor of enisa" in page.inner_text("#error-message")
    page.screenshot(path=str(shots / "auditor-403.png"), full_page=True)
    resp = page.goto(f"{console.url}/api/audit?ep=soc-fr/publish")
    assert resp is not None and resp.status == 403
    page.close()


def test_an_auditor_of_another_organisation_signs_in_with_its_node_key(
    console: Console, browser: Any, shots: Path
) -> None:
    """eeas-intcen's auditor, with no account on enisa's node: its own node signs the
    page's challenge (`jcu console sign-in`, a real subprocess as eeas-intcen)."""
    other, t = "eeas-intcen", console.traffic
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{console.url}/messages?since=24h")
    assert "/login" in page.url
    command = page.inner_text("#sign-in-command")
    assert page.inner_text("#sign-in-origin") == console.url
    page.screenshot(path=str(shots / "sign-in-challenge.png"), full_page=True)
    token = sign_in_token(console.world, other, challenge_on(command))
    page.fill("#token", token)
    page.click("#sign-in-button")
    page.wait_for_url("**/messages?since=24h")
    assert page.get_attribute("#viewer", "data-org") == other
    assert page.get_attribute("#viewer", "data-via") == "key"
    ids = {
        r.get_attribute("data-message") for r in page.locator("#messages tr[data-message]").all()
    }
    assert t.mid("incident") in ids and t.mid("red") not in ids
    page.screenshot(path=str(shots / "signed-in-auditor-messages.png"), full_page=True)
    # its own decisions: the story of the incident report shows eeas-intcen's row only
    page.goto(f"{console.url}/messages/{t.mid('incident')}")
    orgs = {r.get_attribute("data-org") for r in page.locator("#story tbody tr").all()}
    assert orgs == {other}
    assert (
        page.locator(f'#story tr[data-org="{other}"] td.delivery')
        .inner_text()
        .startswith("delivered")
    )
    # a third organisation's message (soc-fr's RED to cert-eu and isac-energy): 403
    resp = page.goto(f"{console.url}/messages/{t.mid('red')}")
    assert resp is not None and resp.status == 403
    assert f"not within the view of auditor of {other}" in page.inner_text("#error-message")
    page.screenshot(path=str(shots / "signed-in-auditor-403.png"), full_page=True)
    resp = page.goto(f"{console.url}/api/messages/{t.mid('red')}")
    assert resp is not None and resp.status == 403
    page.close()
