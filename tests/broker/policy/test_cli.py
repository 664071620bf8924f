"""`jcu policy check` and `jcu policy explain` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.broker.policy.conftest import POLICIES
from tests.cli import run


def test_check_passes_on_the_sample_bundle(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["policy", "check", "--policies", str(POLICIES)], capsys)
    assert code == 0
    assert "FAIL" not in out
    assert out.count("PASS") >= 20


def test_check_fails_when_a_scenario_fails(
    policies_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = policies_copy / "tests" / "rulebook_v1.yaml"
    table.write_text(
        table.read_text().replace(
            "expect: {europol-ec3: allow, soc-fr: allow",
            "expect: {europol-ec3: deny, soc-fr: allow",
        )
    )
    code, out, _ = run(["policy", "check", "--policies", str(policies_copy), "--json"], capsys)
    assert code == 1
    report = json.loads(out)
    failed = [s for s in report["scenarios"] if not s["passed"]]
    assert [s["name"] for s in failed] == ["TLP:RED goes only to the named recipients"]
    assert "europol-ec3: expected deny, got allow (tlp-red-named)" in failed[0]["failures"]


def test_check_on_a_broken_rule_is_one_line_naming_file_and_rule(
    policies_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = policies_copy / "roles.cedar"
    rules.write_text(rules.read_text().replace('"SituationReport" };', '"SituationReport" ;'))
    code, out, err = run(["policy", "check", "--policies", str(policies_copy)], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert "file roles.cedar" in err and "rule supporting-situation-reports-only" in err


EXPLAIN = [
    "policy",
    "explain",
    "--policies",
    str(POLICIES),
    "--from",
    "europol-ec3",
    "--type",
    "IncidentReport",
    "--tlp",
    "AMBER",
    "--category",
    "fraud",
    "--personal-data",
    "--handling",
    "H1",
    "--json",
]


def test_explain_json_lists_every_organisation_but_the_sender(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(EXPLAIN, capsys)
    assert code == 0
    rows = {r["org"]: r for r in json.loads(out)}
    assert "europol-ec3" not in rows and len(rows) == 14
    assert all({"org", "decision", "rules", "legal_basis"} <= set(r) for r in rows.values())
    assert rows["enisa"]["decision"] == "allow"
    assert rows["enisa"]["rules"] == ["tlp-amber-operational", "handling-h1-no-judicial-use"]
    assert rows["enisa"]["obligations"] == [
        "not for use in judicial proceedings without the provider's permission"
    ]
    assert rows["soc-fr"]["decision"] == "deny"  # member of another community
    assert rows["eeas-intcen"]["rules"][0] == "personal-data-not-diplomatic-defence"


def test_explain_gives_the_same_answer_every_time(capsys: pytest.CaptureFixture[str]) -> None:
    first = run(EXPLAIN, capsys)
    second = run(EXPLAIN, capsys)
    assert first == second


def test_explain_crisis_widens_amber(capsys: pytest.CaptureFixture[str]) -> None:
    base = [
        "policy",
        "explain",
        "--policies",
        str(POLICIES),
        "--from",
        "cert-eu",
        "--type",
        "Indicator",
        "--tlp",
        "AMBER",
        "--category",
        "fraud",
        "--incident",
        "INC-9",
        "--member-states",
        "FR,DE",
        "--json",
    ]
    _, calm, _ = run([*base, "--no-crisis"], capsys)
    _, crisis, _ = run([*base, "--crisis"], capsys)
    decision = {r["org"]: r["decision"] for r in json.loads(calm)}
    widened = {r["org"]: r for r in json.loads(crisis)}
    assert decision["eeas-intcen"] == "deny"
    assert widened["eeas-intcen"]["decision"] == "allow"
    assert widened["eeas-intcen"]["rules"] == ["tlp-amber-crisis"]


def test_explain_table_names_organisations_and_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(EXPLAIN[:-1], capsys)
    assert code == 0
    assert "isac-finance" in out and "tlp-amber-operational" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--from", "nobody"], "unknown participant 'nobody'"),
        (["--from", "cert-eu", "--to", "ghost"], "unknown organisations ['ghost']"),
        (["--from", "cert-eu", "--crisis"], "--crisis and --no-crisis need --incident"),
    ],
)
def test_explain_bad_input_is_one_clear_line(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "policy",
        "explain",
        "--policies",
        str(POLICIES),
        "--type",
        "Indicator",
        "--tlp",
        "GREEN",
        *extra,
    ]
    code, out, err = run(argv, capsys)
    assert code == 1 and out == ""
    assert err.startswith("jcu: error: ") and err.count("\n") == 1
    assert message in err
